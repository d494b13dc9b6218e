/**
 * Hourly rollups behind `freight acct summary`: counts per hour × type × rcptDomain × vmta × bounceCat ×
 * path × jobId, and deferral/bounce diagnostics with their variable parts masked so they group.
 * The writer maintains them in the same transaction as the raw rows, so they never disagree.
 */
import type Database from 'better-sqlite3';
import { type AcctRecord, rcptDomainOf } from './record.js';

export const HOUR_MS = 3_600_000;

export function hourOf(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

/** Record types whose diagnostics are rolled up (deferrals and bounces). */
export const DIAG_TYPES: ReadonlySet<string> = new Set(['t', 'b']);

const MAX_DIAG = 160;

/**
 * Mask what differs between otherwise identical replies — addresses, IPs, session ids, counters — so
 * `421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred` from many IPs is one diagnostic.
 */
export function diagKey(diag: string): string {
  return diag
    .replace(/^\s*smtp;\s*/i, '')
    .replace(/<?[^\s<>@]+@[^\s<>@]+>?/g, '<addr>')
    .replace(/\b(?:\d{1,3}\.){3}\d{1,3}\b/g, '<ip>')
    .replace(/\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b/gi, '<ip>')
    .replace(/https?:\/\/\S+/g, '<url>')
    .replace(/\b(?=[A-Za-z0-9._-]*\d)(?=[A-Za-z0-9._-]*[A-Za-z])[A-Za-z0-9._-]{10,}\b/g, '<id>')
    .replace(/\b\d{4,}\b/g, '<n>')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, MAX_DIAG);
}

export type RollupKey = readonly [
  hour: number,
  type: string,
  rcptDomain: string,
  vmta: string,
  bounceCat: string,
  path: string,
  jobId: string,
];

export function rollupKey(rec: AcctRecord): RollupKey {
  return [
    hourOf(rec.timeLogged),
    rec.type,
    rcptDomainOf(rec) ?? '',
    rec.vmta ?? '',
    rec.bounceCat ?? '',
    rec.path,
    rec.jobId ?? '',
  ];
}

/** Accumulates counts for one batch before they are upserted. */
export class RollupBatch {
  readonly counts = new Map<string, { key: RollupKey; n: number }>();
  readonly diags = new Map<string, { key: RollupKey; diag: string; n: number }>();

  add(rec: AcctRecord): void {
    const key = rollupKey(rec);
    const k = key.join('\u0000');
    const c = this.counts.get(k);
    if (c) c.n++;
    else this.counts.set(k, { key, n: 1 });
    if (DIAG_TYPES.has(rec.type) && rec.dsnDiag) {
      const diag = diagKey(rec.dsnDiag);
      const dk = `${k}\u0000${diag}`;
      const d = this.diags.get(dk);
      if (d) d.n++;
      else this.diags.set(dk, { key, diag, n: 1 });
    }
  }
}

/** Prepared upserts that add a batch's counts to the rollup tables, inside the caller's transaction. */
export function rollupWriter(db: Database.Database): (batch: RollupBatch) => void {
  const upsertHourly = db.prepare(
    `INSERT INTO acct_hourly (hour, type, rcptDomain, vmta, bounceCat, path, jobId, n) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT DO UPDATE SET n = n + excluded.n`,
  );
  const upsertDiag = db.prepare(
    `INSERT INTO acct_diag_hourly (hour, type, rcptDomain, vmta, bounceCat, path, jobId, diag, n)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n`,
  );
  return (batch) => {
    for (const { key, n } of batch.counts.values()) upsertHourly.run(...key, n);
    for (const { key, diag, n } of batch.diags.values()) upsertDiag.run(...key, diag, n);
  };
}
