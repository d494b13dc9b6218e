/**
 * Batching writer for accounting rows. Callers `write()` without waiting; rows are inserted in one
 * transaction per batch (every `flushMs` or `maxBatch` rows) together with their hourly rollups.
 * A batch that cannot be written (another process holds the lock past busy_timeout, disk full) stays
 * buffered and is retried, so no row is lost; `close()` flushes what is left.
 */
import type Database from 'better-sqlite3';
import { errorMessage, FreightError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { type AcctRecord, BOUNCE_CATEGORIES, rcptDomainOf } from './record.js';
import { RollupBatch, rollupWriter } from './rollup.js';
import { ACCT_COLUMNS } from './schema.js';
import type { AcctStore } from './store.js';

const log = createLogger('acct');

const TYPES = new Set(['r', 'd', 'b', 't', 'tq', 'rb', 'f', 'rj']);
const PATHS = new Set(['engine', 'postfix', 'handoff', 'policy']);
const CATEGORIES: ReadonlySet<string> = new Set(BOUNCE_CATEGORIES);

export interface AcctWriterOptions {
  flushMs?: number;
  maxBatch?: number;
}

/** Reject a record the database would refuse, at the caller, before it can block a batch. */
export function validateRecord(rec: AcctRecord): void {
  const bad = (why: string) => {
    throw new FreightError('ACCT_BAD_RECORD', `bad accounting record: ${why}`, {
      type: rec.type,
      rcpt: rec.rcpt,
    });
  };
  if (!TYPES.has(rec.type)) bad(`unknown type ${JSON.stringify(rec.type)}`);
  if (!Number.isFinite(rec.timeLogged)) bad('timeLogged is not a number');
  if (!PATHS.has(rec.path)) bad(`unknown path ${JSON.stringify(rec.path)}`);
  if (rec.bounceCat != null && !CATEGORIES.has(rec.bounceCat)) bad(`unknown bounceCat ${rec.bounceCat}`);
}

const COLUMN_COUNT = ACCT_COLUMNS.length;
const RCPT_DOMAIN = ACCT_COLUMNS.indexOf('rcptDomain');

/** Bind values in column order; a plain loop, since every engine and tailer row passes through here. */
function rowValues(rec: AcctRecord): unknown[] {
  const r = rec as unknown as Record<string, unknown>;
  const out = new Array<unknown>(COLUMN_COUNT);
  for (let i = 0; i < COLUMN_COUNT; i++) {
    const v = r[ACCT_COLUMNS[i]!];
    out[i] = v === undefined ? null : v;
  }
  if (RCPT_DOMAIN >= 0) out[RCPT_DOMAIN] = rcptDomainOf(rec);
  return out;
}

export class AcctWriter {
  private readonly db: Database.Database;
  private readonly flushMs: number;
  private readonly maxBatch: number;
  private buffer: AcctRecord[] = [];
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private closed = false;
  private readonly writeBatch: (rows: AcctRecord[]) => number;

  constructor(store: AcctStore, opts: AcctWriterOptions = {}) {
    if (store.readonly) throw new FreightError('ACCT_READONLY', 'AcctWriter needs a read-write AcctStore');
    this.db = store.db;
    this.flushMs = opts.flushMs ?? 100;
    this.maxBatch = opts.maxBatch ?? 1000;
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO acct (${ACCT_COLUMNS.join(', ')}) VALUES (${ACCT_COLUMNS.map(() => '?').join(', ')})`,
    );
    const addRollups = rollupWriter(this.db);
    const tx = this.db.transaction((rows: AcctRecord[]) => {
      const rollup = new RollupBatch();
      let inserted = 0;
      for (const rec of rows) {
        // changes === 0 means the dedupe key was seen before: the row and its rollup are skipped.
        if (insert.run(rowValues(rec)).changes === 1) {
          inserted++;
          rollup.add(rec);
        }
      }
      addRollups(rollup);
      return inserted;
    });
    this.writeBatch = (rows) => tx.immediate(rows);
  }

  /** Rows buffered but not yet committed. */
  get pending(): number {
    return this.buffer.length;
  }

  write(rec: AcctRecord): void {
    if (this.closed) throw new FreightError('ACCT_WRITER_CLOSED', 'write after AcctWriter.close()');
    validateRecord(rec);
    this.buffer.push(rec);
    if (this.buffer.length >= this.maxBatch) this.flush();
    else this.schedule(this.flushMs);
  }

  /** Commit everything buffered now. Returns false if the batch stays buffered for a retry. */
  flush(): boolean {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.buffer.length > 0) {
      const batch = this.buffer.slice(0, this.maxBatch);
      try {
        this.writeBatch(batch);
      } catch (err) {
        this.failures++;
        const delay = Math.min(5000, this.flushMs * 2 ** Math.min(this.failures, 6));
        log.warn('accounting batch not written; will retry', {
          rows: this.buffer.length,
          error: errorMessage(err),
          retryMs: delay,
        });
        if (!this.closed) this.schedule(delay);
        return false;
      }
      this.failures = 0;
      this.buffer.splice(0, batch.length);
    }
    return true;
  }

  /** Flush and stop. Retries a locked database a few times before giving up loudly. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (let attempt = 0; attempt < 5; attempt++) {
      if (this.flush()) return;
    }
    throw new FreightError(
      'ACCT_FLUSH_FAILED',
      `could not write ${this.buffer.length} accounting rows on close`,
      {
        rows: this.buffer.length,
      },
    );
  }

  private schedule(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, ms);
    this.timer.unref();
  }
}
