/**
 * Retention (`acct-retention`): delete accounting rows older than the retention age in small
 * transactions, yielding between them, so engine/tailer writers wait at most one short batch for the
 * lock. Rollup hours wholly before the cutoff, expired suppression entries and old suppression
 * change-log rows go too.
 */
import { HOUR_MS, hourOf } from './rollup.js';
import type { AcctStore } from './store.js';

export interface PruneOptions {
  /** Rows per transaction (default 5000). */
  batchSize?: number;
  /** Clock for tests (epoch ms). */
  now?: number;
}

export interface PruneResult {
  rows: number;
  rollupRows: number;
  suppressionsExpired: number;
}

/** How long suppression change-log entries are kept; readers that fall further behind reload fully. */
const SUPPRESSION_LOG_KEEP_MS = 24 * HOUR_MS;

export async function pruneAcct(
  store: AcctStore,
  olderThanMs: number,
  opts: PruneOptions = {},
): Promise<PruneResult> {
  const now = opts.now ?? Date.now();
  const cutoff = now - olderThanMs;
  const batch = opts.batchSize ?? 5000;
  const db = store.db;
  const del = db.prepare('DELETE FROM acct WHERE id IN (SELECT id FROM acct WHERE timeLogged < ? LIMIT ?)');
  const result: PruneResult = { rows: 0, rollupRows: 0, suppressionsExpired: 0 };
  for (;;) {
    const n = db.transaction(() => del.run(cutoff, batch).changes).immediate();
    result.rows += n;
    if (n < batch) break;
    await new Promise((r) => setImmediate(r));
  }
  // An hour is dropped from the rollups only once all of it is past the cutoff.
  const lastWholeHour = hourOf(cutoff);
  db.transaction(() => {
    result.rollupRows += db.prepare('DELETE FROM acct_hourly WHERE hour < ?').run(lastWholeHour).changes;
    result.rollupRows += db.prepare('DELETE FROM acct_diag_hourly WHERE hour < ?').run(lastWholeHour).changes;
    result.suppressionsExpired = db
      .prepare('DELETE FROM suppression WHERE expiresAt IS NOT NULL AND expiresAt <= ?')
      .run(now).changes;
    db.prepare('DELETE FROM suppression_log WHERE at < ?').run(now - SUPPRESSION_LOG_KEEP_MS);
  }).immediate();
  return result;
}
