/** `freight acct summary|list|export|trail` (operator reports on SQLite). `acct import` belongs to the tailer. */
import { parseArgs } from 'node:util';
import type { Command } from '../common/command.js';
import { errorMessage } from '../common/errors.js';
import { fail, printJson, printRows, type Row } from '../common/output.js';
import { DB_OPTIONS, openAcct, parseTimeArg } from './cli-db.js';
import { jsonLine, PMTA_CSV_TYPES, pmtaCsvHeader, pmtaCsvLine } from './export.js';
import {
  type AcctRow,
  iterate,
  type ListFilters,
  list,
  SUMMARY_GROUPS,
  type SummaryBy,
  summary,
  trail,
} from './query.js';

const FILTER_OPTIONS = {
  ...DB_OPTIONS,
  type: { type: 'string' },
  rcpt: { type: 'string' },
  domain: { type: 'string' },
  job: { type: 'string' },
  vmta: { type: 'string' },
  category: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  limit: { type: 'string' },
} as const;

type FilterValues = { [K in keyof typeof FILTER_OPTIONS]?: string | boolean };

function filters(v: FilterValues, defaultLimit: number): ListFilters {
  const s = (k: keyof FilterValues) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const limit = s('limit') === undefined ? defaultLimit : Number(s('limit'));
  if (!Number.isInteger(limit) || limit < 0)
    throw new Error(`--limit must be a whole number, got ${s('limit')}`);
  return {
    types: s('type')
      ?.split(',')
      .map((t) => t.trim()),
    rcpt: s('rcpt'),
    domain: s('domain'),
    job: s('job'),
    vmta: s('vmta'),
    category: s('category'),
    since: parseTimeArg(s('since')),
    until: parseTimeArg(s('until')),
    limit,
  };
}

function iso(ms: unknown): string | null {
  return typeof ms === 'number' ? new Date(ms).toISOString() : null;
}

function humanRow(r: AcctRow): Row {
  return {
    time: iso(r.timeLogged),
    type: r.type,
    path: r.path,
    rcpt: r.rcpt,
    vmta: r.vmta,
    status: r.dsnStatus,
    category: r.bounceCat,
    queueId: r.postfixQueueId,
    messageId: r.messageId,
    diag: typeof r.dsnDiag === 'string' ? r.dsnDiag.slice(0, 80) : null,
  };
}

async function run(fn: () => number | Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    return fail(errorMessage(err));
  }
}

const summaryCmd: Command = {
  name: 'acct summary',
  summary: 'counts and rates of received/delivered/bounced/deferred per group',
  usage: `freight acct summary [--by ${SUMMARY_GROUPS.join('|')}] [--since 24h] [--until T] [--domain D] [--json] [--config FILE | --db PATH]`,
  run: (argv) =>
    run(() => {
      const { values } = parseArgs({
        args: argv,
        options: {
          ...DB_OPTIONS,
          by: { type: 'string' },
          since: { type: 'string' },
          until: { type: 'string' },
          domain: { type: 'string' },
        },
      });
      if (values.by && !SUMMARY_GROUPS.includes(values.by as SummaryBy)) {
        return fail(`--by must be one of ${SUMMARY_GROUPS.join(', ')}`);
      }
      const store = openAcct(values, true);
      try {
        const rows = summary(store, {
          by: values.by as SummaryBy | undefined,
          since: parseTimeArg(values.since),
          until: parseTimeArg(values.until),
          domain: values.domain,
        });
        if (values.json) printJson(rows);
        else
          printRows(
            rows.map((r) => ({
              [values.by ?? 'group']: r.group,
              r: r.received,
              d: r.delivered,
              b: r.bounced,
              t: r.deferred,
              'dlv%': r.deliveryRate === null ? null : r.deliveryRate * 100,
              'dfr%': r.deferralRate === null ? null : r.deferralRate * 100,
              'top deferrals': r.topDeferrals.map((d) => `${d.count}× ${d.diag}`).join(' | ') || null,
            })),
            { json: false },
          );
        return 0;
      } finally {
        store.close();
      }
    }),
};

const listCmd: Command = {
  name: 'acct list',
  summary: 'accounting rows, newest first, filtered',
  usage:
    'freight acct list [--type d,b] [--rcpt A] [--domain D] [--job J] [--vmta V] [--category C] [--since 1h] [--until T] [--limit 100] [--json] [--config FILE | --db PATH]',
  run: (argv) =>
    run(() => {
      const { values } = parseArgs({ args: argv, options: FILTER_OPTIONS });
      const store = openAcct(values, true);
      try {
        const rows = list(store, filters(values, 100));
        if (values.json) printJson(rows);
        else printRows(rows.map(humanRow), { json: false });
        return 0;
      } finally {
        store.close();
      }
    }),
};

const exportCmd: Command = {
  name: 'acct export',
  summary: "export rows as PowerMTA's accounting CSV (d,b records) or JSON lines",
  usage:
    'freight acct export [--format pmta-csv|jsonl] [--type …] [--since …] [--until …] [other list filters] [--config FILE | --db PATH]',
  run: (argv) =>
    run(() => {
      const { values } = parseArgs({
        args: argv,
        options: { ...FILTER_OPTIONS, format: { type: 'string', default: 'pmta-csv' } },
      });
      if (values.format !== 'pmta-csv' && values.format !== 'jsonl')
        return fail('--format must be pmta-csv or jsonl');
      const f = { ...filters(values, 0), ascending: true };
      if (values.format === 'pmta-csv') {
        // PowerMTA's CSV carries only delivery and bounce records.
        f.types = (f.types ?? PMTA_CSV_TYPES).filter((t) => PMTA_CSV_TYPES.includes(t));
      }
      const store = openAcct(values, true);
      try {
        const out: string[] = [];
        const emit = (s: string) => {
          out.push(s);
          if (out.length >= 1000) process.stdout.write(out.splice(0).join(''));
        };
        if (values.format === 'pmta-csv') emit(pmtaCsvHeader());
        for (const row of iterate(store, f)) {
          if (values.format === 'jsonl') emit(jsonLine(row));
          // A hand-off is Postfix passing mail to the engine; the engine's own row is the delivery.
          else if (row.path !== 'handoff') emit(pmtaCsvLine(row));
        }
        process.stdout.write(out.join(''));
        return 0;
      } finally {
        store.close();
      }
    }),
};

const trailCmd: Command = {
  name: 'acct trail',
  summary: 'every event of one message across Postfix and the engine, in time order',
  usage: 'freight acct trail <message-id|postfix-queue-id|rcpt> [--json] [--config FILE | --db PATH]',
  run: (argv) =>
    run(() => {
      const { values, positionals } = parseArgs({ args: argv, options: DB_OPTIONS, allowPositionals: true });
      if (positionals.length !== 1)
        return fail('usage: freight acct trail <message-id|postfix-queue-id|rcpt>');
      const store = openAcct(values, true);
      try {
        const rows = trail(store, positionals[0]!);
        if (values.json) printJson(rows);
        else printRows(rows.map(humanRow), { json: false });
        return rows.length > 0 ? 0 : 1;
      } finally {
        store.close();
      }
    }),
};

export const commands: Command[] = [summaryCmd, listCmd, exportCmd, trailCmd];
