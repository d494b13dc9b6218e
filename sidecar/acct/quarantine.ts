/**
 * Rows that cannot be written go to `acct_quarantine` with the reason, so one bad row never stops the
 * rows behind it. Which failures belong to the row and which to the store decides what a writer does:
 * a row error quarantines that row and goes on; a store error (locked, full, I/O) keeps every row and
 * retries, because the next row would fail the same way.
 */
import type Database from 'better-sqlite3';
import { errorMessage, isFreightError } from '../common/errors.js';
import type { AcctRecord } from './record.js';

export interface QuarantinedRow {
  id: number;
  at: number;
  source: string;
  code: string;
  reason: string;
  row: string;
}

/** SQLite result codes that are about the values of one row, not about the database. */
const ROW_SQLITE_CODES = /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/;

/** Stable code of a write failure: the SQLite extended code, a FreightError code, or ACCT_BAD_VALUE. */
export function writeErrorCode(err: unknown): string {
  if (isFreightError(err)) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('SQLITE_')) return code;
  // better-sqlite3 refuses values it cannot bind (objects, functions, symbols) with a TypeError.
  if (err instanceof TypeError || err instanceof RangeError) return 'ACCT_BAD_VALUE';
  return 'ACCT_WRITE_FAILED';
}

/** True when `err` is about the row itself: quarantine it. False: the store failed, keep and retry. */
export function isRowError(err: unknown): boolean {
  const code = writeErrorCode(err);
  return code === 'ACCT_BAD_RECORD' || code === 'ACCT_BAD_VALUE' || ROW_SQLITE_CODES.test(code);
}

/** JSON that never throws: a row with a BigInt or a cycle is still kept, as text. */
function rowJson(rec: unknown): string {
  try {
    return JSON.stringify(rec, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(rec);
  } catch {
    return String(rec);
  }
}

export class AcctQuarantine {
  private readonly insert: Database.Statement;
  private readonly count: Database.Statement;

  constructor(private readonly db: Database.Database) {
    this.insert = db.prepare(
      'INSERT INTO acct_quarantine (at, source, code, reason, row) VALUES (?, ?, ?, ?, ?)',
    );
    this.count = db.prepare('SELECT count(*) AS n FROM acct_quarantine');
  }

  /** Keep `rec` with why it failed. Run inside the caller's transaction when there is one. */
  add(source: string, rec: AcctRecord | unknown, err: unknown, now = Date.now()): void {
    this.insert.run(now, source, writeErrorCode(err), errorMessage(err), rowJson(rec));
  }

  /** Rows in quarantine now (what `freight show status` and `/metrics` report). */
  total(): number {
    return (this.count.get() as { n: number }).n;
  }

  list(limit = 100): QuarantinedRow[] {
    return this.db
      .prepare('SELECT * FROM acct_quarantine ORDER BY id DESC LIMIT ?')
      .all(limit) as QuarantinedRow[];
  }
}
