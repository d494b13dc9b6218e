/**
 * Retention (`acct-retention`): delete what is older than the retention age in time-bounded slices.
 * Every slice is one IMMEDIATE transaction whose lock-hold time is measured; the next slice's row count
 * follows the measured cost so a slice aims at a third of `maxSliceMs` (room for a slow disk or a busy
 * CPU), and a slice that ran long halves it.
 * Between slices the pruner pauses at least as long as the slice took, long enough for writers polling
 * in SQLite's busy handler to take the lock: engine, tailer and policy wait one short slice at most.
 *
 * The cutoff is rounded down to a whole hour, so raw rows and hourly rollups always lose the same
 * hours and `acct summary` stays consistent with `acct list` for whatever is left.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { HOUR_MS, hourOf } from './rollup.js';
import type { AcctStore } from './store.js';

/** How long suppression change-log entries are kept; readers that fall further behind reload fully. */
const SUPPRESSION_LOG_KEEP_MS = 24 * HOUR_MS;
const MIN_BATCH = 50;
const MAX_BATCH = 100_000;
const MIN_PAUSE_MS = 5;

export const PRUNE_TABLES = [
  'acct',
  'acct_hourly',
  'acct_diag_hourly',
  'acct_quarantine',
  'suppression',
  'suppression_log',
] as const;
export type PruneTable = (typeof PRUNE_TABLES)[number];

interface Target {
  table: PruneTable;
  /** What identifies a row (its rowid, or the primary key of a WITHOUT ROWID table). */
  key: string;
  /** Time column the bound applies to. */
  time: string;
  /** Condition on `?` (the bound). */
  where: string;
  bound: (b: Bounds) => number;
}

interface Bounds {
  cutoff: number;
  now: number;
}

const ROLLUP_KEY = 'hour, type, rcptDomain, vmta, bounceCat, path, jobId';

/** Order matters: expiring suppressions writes change-log rows, which are pruned after them. */
const TARGETS: readonly Target[] = [
  { table: 'acct', key: 'id', time: 'timeLogged', where: 'timeLogged < ?', bound: (b) => b.cutoff },
  { table: 'acct_hourly', key: ROLLUP_KEY, time: 'hour', where: 'hour < ?', bound: (b) => b.cutoff },
  {
    table: 'acct_diag_hourly',
    key: `${ROLLUP_KEY}, diag`,
    time: 'hour',
    where: 'hour < ?',
    bound: (b) => b.cutoff,
  },
  { table: 'acct_quarantine', key: 'id', time: 'at', where: 'at < ?', bound: (b) => b.cutoff },
  {
    table: 'suppression',
    key: 'rowid',
    time: 'expiresAt',
    where: 'expiresAt IS NOT NULL AND expiresAt <= ?',
    bound: (b) => b.now,
  },
  {
    table: 'suppression_log',
    key: 'seq',
    time: 'at',
    where: 'at < ?',
    bound: (b) => b.now - SUPPRESSION_LOG_KEEP_MS,
  },
];

export interface PruneOptions {
  /** Clock for tests (epoch ms). */
  now?: number;
  /** Longest one slice may hold the write lock (ms, default 50). */
  maxSliceMs?: number;
  /** Rows in the first slice of each table (default 500); later slices follow the measured rate. */
  firstBatch?: number;
  /** Stops between slices; what was deleted so far stays deleted. */
  signal?: AbortSignal;
}

export interface PruneResult {
  cutoff: number;
  deleted: Record<PruneTable, number>;
  slices: number;
  /** Longest measured lock-hold of one slice (ms). */
  longestSliceMs: number;
  aborted: boolean;
}

export interface PrunePlanRow {
  table: PruneTable;
  rows: number;
  /** Oldest and newest time (the table's time column, epoch ms) among the rows that go. */
  oldest: number | null;
  newest: number | null;
}

/** Rows older than `olderThanMs` go; the cutoff is rounded down to the hour (see the file comment). */
export function pruneCutoff(olderThanMs: number, now: number): number {
  return hourOf(now - olderThanMs);
}

/** What a prune would delete, per table (read-only; `freight acct prune --dry-run`). */
export function planPrune(store: AcctStore, olderThanMs: number, now = Date.now()): PrunePlanRow[] {
  const bounds = { cutoff: pruneCutoff(olderThanMs, now), now };
  return TARGETS.map((t) => {
    const r = store.db
      .prepare(
        `SELECT count(*) AS n, min(${t.time}) AS lo, max(${t.time}) AS hi FROM ${t.table} WHERE ${t.where}`,
      )
      .get(t.bound(bounds)) as { n: number; lo: number | null; hi: number | null };
    return { table: t.table, rows: r.n, oldest: r.lo, newest: r.hi };
  });
}

/**
 * Sizes slices from measured cost. Slices of the same size vary severalfold (a commit that triggers a
 * WAL checkpoint; test/acct-prune.test.ts measures the longest lock-hold), so the estimate is the
 * slowest per-row cost of the last few slices, not the latest.
 */
class SliceSizer {
  private readonly costs: number[] = [];
  batch: number;

  constructor(
    first: number,
    private readonly maxSliceMs: number,
  ) {
    this.batch = first;
  }

  /** Record a slice; aim the next at a third of the bound, and halve at once after one that ran long. */
  took(rows: number, ms: number): void {
    this.costs.push(ms / Math.max(rows, 1));
    if (this.costs.length > 4) this.costs.shift();
    if (ms > this.maxSliceMs) {
      this.batch = Math.max(MIN_BATCH, Math.floor(this.batch / 2));
      return;
    }
    const atCost = Math.floor(this.maxSliceMs / 3 / Math.max(...this.costs, 1e-4));
    this.batch = Math.min(MAX_BATCH, Math.max(MIN_BATCH, Math.min(atCost, this.batch * 2)));
  }
}

export async function pruneAcct(
  store: AcctStore,
  olderThanMs: number,
  opts: PruneOptions = {},
): Promise<PruneResult> {
  const now = opts.now ?? Date.now();
  const bounds = { cutoff: pruneCutoff(olderThanMs, now), now };
  const maxSliceMs = opts.maxSliceMs ?? 50;
  const db = store.db;
  const deleted = Object.fromEntries(PRUNE_TABLES.map((t) => [t, 0])) as Record<PruneTable, number>;
  const result: PruneResult = {
    cutoff: bounds.cutoff,
    deleted,
    slices: 0,
    longestSliceMs: 0,
    aborted: false,
  };
  let lastMs = 0;
  for (const t of TARGETS) {
    const del = db.prepare(
      `DELETE FROM ${t.table} WHERE (${t.key}) IN (SELECT ${t.key} FROM ${t.table} WHERE ${t.where} LIMIT ?)`,
    );
    const bound = t.bound(bounds);
    const sizer = new SliceSizer(opts.firstBatch ?? 500, maxSliceMs);
    for (;;) {
      if (result.slices > 0) await sleep(Math.max(MIN_PAUSE_MS, lastMs));
      if (opts.signal?.aborted) {
        result.aborted = true;
        return result;
      }
      let started = 0;
      // Timed from inside BEGIN IMMEDIATE to after COMMIT: the time the lock was held, not waited for
      // (plus any WAL checkpoint the commit runs after releasing it, which only makes slices smaller).
      const n = db
        .transaction(() => {
          started = performance.now();
          return del.run(bound, sizer.batch).changes;
        })
        .immediate();
      const ms = performance.now() - started;
      lastMs = ms;
      result.slices++;
      result.longestSliceMs = Math.max(result.longestSliceMs, ms);
      deleted[t.table] += n;
      if (n < sizer.batch) break;
      sizer.took(n, ms);
    }
  }
  return result;
}
