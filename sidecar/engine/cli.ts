/**
 * `freight engine` (run the engine) and the commands that steer a running one over its control socket:
 * `freight show status|queues|domains|vmtas [--json]`, `freight pause|resume queue D[/V]`,
 * `freight schedule D`.
 */
import { parseArgs } from 'node:util';
import { AcctQuarantine } from '../acct/quarantine.js';
import { AcctStore } from '../acct/store.js';
import type { Command } from '../common/command.js';
import { errorMessage } from '../common/errors.js';
import { fail, printJson, printRows, type Row } from '../common/output.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { FreightConfig } from '../config/model.js';
import {
  type ControlRequest,
  controlRequest,
  type EngineStatusReport,
  type QueueActionResult,
  type ScheduleResult,
} from './control/index.js';

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: { config: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
}

/** Ask the running engine named by --config; errors become a CLI failure line. */
async function ask(argv: string[], build: (positionals: string[]) => ControlRequest | string) {
  const { values, positionals } = parse(argv);
  const req = build(positionals);
  if (typeof req === 'string') throw new UsageError(req);
  const config = loadConfig(resolveConfigPath(values.config));
  return { result: await controlRequest(config.global.runDir, req), json: values.json === true, config };
}

/** Quarantined rows in the accounting database: every writer's, not only the engine's own. */
function acctQuarantined(config: FreightConfig): { quarantinedRows: number | null; error?: string } {
  try {
    const store = AcctStore.open(config.global.acctDb, { readonly: true });
    try {
      return { quarantinedRows: new AcctQuarantine(store.db).total() };
    } finally {
      store.close();
    }
  } catch (err) {
    return { quarantinedRows: null, error: errorMessage(err) };
  }
}

class UsageError extends Error {}

function guard(fn: (argv: string[]) => Promise<number>): (argv: string[]) => Promise<number> {
  return async (argv) => {
    try {
      return await fn(argv);
    } catch (err) {
      return fail(
        errorMessage(err),
        err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 64 : 1,
      );
    }
  };
}

const time = (ms: unknown) => (typeof ms === 'number' && ms > 0 ? new Date(ms).toISOString() : null);

const engine: Command = {
  name: 'engine',
  summary: 'run the outbound engine (LMTP/SMTP intake, spool, per-destination queues) in the foreground',
  usage: `Usage: freight engine [--config FILE]

Listens on smtp-listener (LMTP or SMTP, chosen by the client's LHLO/EHLO), spools every message durably
before answering 250, and delivers through per-(domain, virtual MTA) queues. SIGTERM stops gracefully,
SIGHUP reloads the config (a config that fails to load is refused and the running one kept).`,
  run: guard(async (argv) => {
    const { values, positionals } = parse(argv);
    if (positionals.length > 0) throw new UsageError('engine takes no arguments');
    const { runEngine } = await import('./daemon.js');
    return runEngine(resolveConfigPath(values.config));
  }),
};

const SHOW_COLUMNS: Record<string, string[]> = {
  queues: [
    'domain',
    'vmta',
    'depth',
    'inFlight',
    'connections',
    'maxConnections',
    'rate',
    'mode',
    'paused',
    'lastError',
  ],
  domains: ['domain', 'queues', 'depth', 'inFlight', 'connections', 'rate', 'paused', 'lastError'],
  vmtas: ['name', 'sourceIp', 'hostName', 'queues', 'depth', 'connections', 'rate', 'disabled'],
};

function statusRows(s: EngineStatusReport): Row[] {
  const d = s.delivery;
  return [
    { item: 'pid', value: s.pid },
    { item: 'started', value: time(s.startedAt) },
    { item: 'intake', value: `${s.intake.listener} (${s.intake.sessions} sessions)` },
    { item: 'intake refusing', value: s.intake.refusing ?? 'no' },
    { item: 'accepted messages', value: s.intake.acceptedMessages },
    { item: 'accepted recipients', value: s.intake.acceptedRecipients },
    { item: 'spool messages', value: s.spool.messages },
    {
      item: 'spool data',
      value: `${s.spool.dataSegments} segments, ${Math.ceil(s.spool.dataBytes / 1024 ** 2)} MB`,
    },
    { item: 'spool free MB', value: Math.floor(s.spool.freeBytes / 1024 ** 2) },
    { item: 'queued recipients', value: d.queuedRecipients },
    { item: 'in flight', value: d.inFlight },
    { item: 'connections', value: d.connections },
    { item: 'queues (paused)', value: `${d.queues} (${d.pausedQueues})` },
    { item: 'rate msg/min', value: d.rate },
    { item: 'delivered/bounced/deferred', value: `${d.delivered}/${d.bounced}/${d.deferred}` },
    { item: 'DSNs sent/outbox/retrying', value: `${s.dsn.sent}/${s.dsn.outbox}/${s.dsn.retrying}` },
    {
      item: 'DSNs failed/corrupt/no original',
      value: `${s.dsn.failed}/${s.dsn.corrupt}/${s.dsn.withoutOriginal}`,
    },
    {
      item: 'last error',
      value: d.lastError ? `${d.lastErrorQueue}: ${d.lastError} at ${time(d.lastErrorAt)}` : null,
    },
  ];
}

const show: Command = {
  name: 'show',
  summary: 'show the running engine: status, queues, domains or vmtas',
  usage: `Usage: freight show status|queues|domains|vmtas [--json] [--config FILE]

Asks the running engine over its control socket (<run-dir>/engine.sock). Queues show depth, in-flight
recipients, connections, delivery rate (messages/min over the last minute), mode and last error.`,
  run: guard(async (argv) => {
    const { result, json, config } = await ask(argv, (p) => {
      const what = p[0];
      if (p.length !== 1 || !['status', 'queues', 'domains', 'vmtas'].includes(what!)) {
        return 'usage: freight show status|queues|domains|vmtas';
      }
      return { op: what as 'status' | 'queues' | 'domains' | 'vmtas' };
    });
    const what = parse(argv).positionals[0]!;
    if (what === 'status') {
      const acctDb = acctQuarantined(config);
      if (json) printJson({ ...(result as EngineStatusReport), acctDb });
      else {
        const rows = statusRows(result as EngineStatusReport);
        const n = acctDb.quarantinedRows;
        rows.push({ item: 'acct quarantine', value: n === null ? `unknown (${acctDb.error})` : `${n} rows` });
        printRows(rows, { json: false });
      }
    } else if (json) printJson(result);
    else printRows(result as Row[], { json: false, columns: SHOW_COLUMNS[what] });
    return 0;
  }),
};

function queueCommand(op: 'pause' | 'resume'): Command {
  return {
    name: op,
    summary: `${op} delivery of a queue: ${op} queue DOMAIN[/VMTA]`,
    usage: `Usage: freight ${op} queue DOMAIN[/VMTA] [--json] [--config FILE]

Without /VMTA every queue of the domain is ${op === 'pause' ? 'paused (including ones created later)' : 'resumed'}.
Paused queues keep their mail; nothing is lost.`,
    run: guard(async (argv) => {
      const { result, json } = await ask(argv, (p) => {
        if (p.length !== 2 || p[0] !== 'queue' || !p[1]) return `usage: freight ${op} queue DOMAIN[/VMTA]`;
        const [domain, vmta] = p[1].split('/');
        return vmta ? { op, domain: domain!, vmta } : { op, domain: domain! };
      });
      const r = result as QueueActionResult;
      if (json) printJson(r);
      else
        process.stdout.write(
          `${op}d: ${r.queues.length > 0 ? r.queues.join(', ') : '(no queue matched yet)'}\n`,
        );
      return 0;
    }),
  };
}

const schedule: Command = {
  name: 'schedule',
  summary: 'retry a domain now: schedule DOMAIN',
  usage: `Usage: freight schedule DOMAIN [--json] [--config FILE]

Makes every waiting recipient of DOMAIN due now (PowerMTA's 'pmta schedule').`,
  run: guard(async (argv) => {
    const { result, json } = await ask(argv, (p) =>
      p.length === 1 && p[0] ? { op: 'schedule', domain: p[0] } : 'usage: freight schedule DOMAIN',
    );
    const r = result as ScheduleResult;
    if (json) printJson(r);
    else process.stdout.write(`${r.domain}: ${r.rescheduled} recipient(s) due now\n`);
    return 0;
  }),
};

export const commands: Command[] = [engine, show, queueCommand('pause'), queueCommand('resume'), schedule];
