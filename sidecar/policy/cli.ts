/** `freight policy` (the daemon) and `freight policy stats`. */
import { parseArgs } from 'node:util';
import type { Command } from '../common/command.js';
import { runDaemon } from '../common/daemon.js';
import { createLogger } from '../common/log.js';
import { formatTable, printJson } from '../common/output.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { type PolicyDaemon, startPolicyDaemon } from './daemon.js';
import { fetchStats, type PolicyStats } from './stats.js';

const policy: Command = {
  name: 'policy',
  summary: 'run the policy daemon (check_policy_service: rate limits, suppression)',
  usage: `Usage: freight policy [--config FILE]

Serves Postfix's policy delegation protocol on policy-listener (and policy-socket if set).
Point smtpd at it, e.g.:
  smtpd_recipient_restrictions = ..., check_policy_service inet:127.0.0.1:10040, ...
  smtpd_end_of_data_restrictions = check_policy_service inet:127.0.0.1:10040   (byte limits)
Limits are <policy-limit NAME> blocks in freight.conf. SIGHUP reloads them.`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } }, strict: true });
    const path = resolveConfigPath(values.config);
    const config = loadConfig(path);
    const log = createLogger('policy');
    let daemon: PolicyDaemon | null = null;
    // Claim the pid file first, so a second copy refuses before it touches the stores or listeners.
    const stopped = runDaemon('policy', config.global.runDir, log, {
      reload: () => daemon?.reload(loadConfig(path)),
      stop: async () => daemon?.stop(),
    });
    daemon = await startPolicyDaemon(config, log);
    await stopped;
    return 0;
  },
};

function when(ms: number | null): string {
  return ms ? new Date(ms).toISOString().replace('.000Z', 'Z') : '-';
}

function printStats(s: PolicyStats): void {
  const d = s.decisions;
  process.stdout.write(
    `requests ${d.requests}  permitted ${d.permitted}  limited ${d.limited}  suppressed ${d.suppressed}` +
      `  store-unavailable ${d.storeUnavailable}  connections ${s.connections.open}` +
      `  stores: counters ${s.stores.counters ? 'ok' : 'DOWN'}, suppression ${s.stores.suppression ? 'ok' : 'DOWN'}\n\n`,
  );
  process.stdout.write(
    s.limits.length === 0 ? 'no <policy-limit> blocks configured\n' : formatTable(s.limits),
  );
  const rows = (list: PolicyStats['counters']) =>
    list.map((k) => ({
      limit: k.limit,
      key: k.key,
      usage: k.windows.map((w) => `${Math.round(w.used)}/${w.limit} per ${w.rate.split('/')[1]}`).join(', '),
      fill: `${Math.round(k.fill * 100)}%`,
      rejected: k.rejected,
      lastRejected: when(k.lastRejectedAt),
    }));
  if (s.mostLimited.length > 0)
    process.stdout.write(`\nmost limited keys\n${formatTable(rows(s.mostLimited))}`);
  if (s.counters.length > 0)
    process.stdout.write(`\ncounters (fullest first)\n${formatTable(rows(s.counters))}`);
}

const stats: Command = {
  name: 'policy stats',
  summary: 'current policy counters per key and the most limited keys',
  usage: `Usage: freight policy stats [--config FILE] [--json] [--top N]

Asks the running policy daemon for its live counters.`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { config: { type: 'string' }, json: { type: 'boolean' }, top: { type: 'string' } },
      strict: true,
    });
    const config = loadConfig(resolveConfigPath(values.config));
    const s = await fetchStats(config.global.runDir);
    const top = values.top ? Number(values.top) : 20;
    s.counters = s.counters.slice(0, top);
    s.mostLimited = s.mostLimited.slice(0, top);
    if (values.json) printJson(s);
    else printStats(s);
    return 0;
  },
};

export const commands: Command[] = [policy, stats];
