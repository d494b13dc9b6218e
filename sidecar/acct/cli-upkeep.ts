/**
 * Upkeep of the accounting database: `freight acct prune` (what retention deletes, and deleting it by
 * hand) and `freight acct quarantine` (rows no writer could store, with the reason).
 */
import { parseArgs } from 'node:util';
import type { Command } from '../common/command.js';
import { errorMessage, FreightError } from '../common/errors.js';
import { fail, printJson, printRows } from '../common/output.js';
import { GLOBAL } from '../config/globals.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { parseDuration } from '../config/units.js';
import { DB_OPTIONS, openAcct } from './cli-db.js';
import { planPrune, pruneAcct, pruneCutoff } from './prune.js';
import { AcctQuarantine } from './quarantine.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** `--older-than`, else `acct-retention` from the config, else the directive's default (with `--db`). */
function retentionMs(values: { config?: string; db?: string; 'older-than'?: string }): number {
  const text = values['older-than'];
  if (text !== undefined) {
    let ms: number;
    try {
      ms = parseDuration(text);
    } catch {
      throw new FreightError('ACCT_BAD_RETENTION', `--older-than: not a duration: ${text} (use e.g. 90d)`);
    }
    if (ms <= 0) throw new FreightError('ACCT_BAD_RETENTION', '--older-than must be longer than 0');
    return ms;
  }
  if (values.db) return GLOBAL.acctRetention.default;
  return loadConfig(resolveConfigPath(values.config)).global.acctRetention;
}

async function run(fn: () => number | Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    return fail(errorMessage(err));
  }
}

const pruneCmd: Command = {
  name: 'acct prune',
  summary: 'delete accounting rows older than acct-retention (or --older-than); --dry-run shows what goes',
  usage:
    'freight acct prune [--dry-run] [--older-than 90d] [--json] [--config FILE | --db PATH]\n\n' +
    'Deletes raw rows, hourly rollups and quarantined rows of whole hours before the cutoff, expired\n' +
    'suppressions and day-old suppression change-log entries, in short transactions that never keep\n' +
    'the running daemons waiting. The tailer does the same on acct-prune-schedule.',
  run: (argv) =>
    run(async () => {
      const { values } = parseArgs({
        args: argv,
        options: {
          ...DB_OPTIONS,
          'dry-run': { type: 'boolean', default: false },
          'older-than': { type: 'string' },
        },
      });
      const olderThan = retentionMs(values);
      const now = Date.now();
      const dryRun = values['dry-run'] === true;
      const store = openAcct(values, dryRun);
      try {
        const plan = planPrune(store, olderThan, now).map((p) => ({
          table: p.table,
          rows: p.rows,
          oldest: iso(p.oldest),
          newest: iso(p.newest),
        }));
        const cutoff = iso(pruneCutoff(olderThan, now));
        const result = dryRun ? null : await pruneAcct(store, olderThan, { now });
        if (values.json) {
          printJson({ dryRun, cutoff, tables: plan, ...(result ? { deleted: result.deleted } : {}) });
          return 0;
        }
        process.stdout.write(`${dryRun ? 'would delete' : 'deleting'} what is older than ${cutoff}:\n`);
        printRows(plan, { json: false });
        if (result) {
          const total = Object.values(result.deleted).reduce((a, b) => a + b, 0);
          process.stdout.write(`deleted ${total} rows in ${result.slices} transactions\n`);
        }
        return 0;
      } finally {
        store.close();
      }
    }),
};

const quarantineCmd: Command = {
  name: 'acct quarantine',
  summary: 'rows no writer could store (constraint, bad value), newest first, with the reason',
  usage: 'freight acct quarantine [--limit 20] [--json] [--config FILE | --db PATH]',
  run: (argv) =>
    run(() => {
      const { values } = parseArgs({ args: argv, options: { ...DB_OPTIONS, limit: { type: 'string' } } });
      const limit = values.limit === undefined ? 20 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1)
        return fail(`--limit must be a whole number ≥ 1, got ${values.limit}`);
      const store = openAcct(values, true);
      try {
        const q = new AcctQuarantine(store.db);
        const total = q.total();
        const rows = q.list(limit);
        if (values.json) {
          printJson({ total, rows });
          return 0;
        }
        process.stdout.write(
          `acct quarantine: ${total} rows${total > rows.length ? ` (newest ${rows.length})` : ''}\n`,
        );
        if (rows.length === 0) return 0;
        printRows(
          rows.map((r) => ({
            id: r.id,
            at: iso(r.at),
            source: r.source,
            code: r.code,
            reason: r.reason.slice(0, 80),
            row: r.row.length > 120 ? `${r.row.slice(0, 119)}…` : r.row,
          })),
          { json: false },
        );
        return 0;
      } finally {
        store.close();
      }
    }),
};

export const commands: Command[] = [pruneCmd, quarantineCmd];
