/**
 * Batching writer for accounting rows. Callers `write()` without waiting; rows are inserted in one
 * transaction per batch (every `flushMs` or `maxBatch` rows) together with their hourly rollups.
 * A row the database refuses (bad value, constraint) goes to `acct_quarantine` and the batch goes on.
 * A batch the store cannot take (another process holds the lock past busy_timeout, disk full) stays
 * buffered and is retried with backoff; past `maxBacklog` rows the writer reports itself backlogged so
 * callers stop taking new work. With a `checkpoint`, the log position the rows were derived from is
 * committed with them (acct_cursor), which is what lets the engine replay exactly the missing rows
 * after a crash; `close()` flushes what is left.
 */
import type Database from 'better-sqlite3';
import { errorMessage, FreightError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { AcctCursor } from './cursor.js';
import { AcctQuarantine, isRowError } from './quarantine.js';
import { type AcctRecord, BOUNCE_CATEGORIES, rcptDomainOf } from './record.js';
import { RollupBatch, rollupWriter } from './rollup.js';
import { ACCT_COLUMNS } from './schema.js';
import type { AcctStore } from './store.js';

const log = createLogger('acct');

const TYPES = new Set(['r', 'd', 'b', 't', 'tq', 'rb', 'f', 'rj']);
const PATHS = new Set(['engine', 'postfix', 'handoff', 'policy']);
const CATEGORIES: ReadonlySet<string> = new Set(BOUNCE_CATEGORIES);

/** The log a writer's rows come from, for crash-consistent replay. */
export interface AcctCheckpoint {
  /** Name of the log in acct_cursor. */
  source: string;
  /** Number of the newest log record such that it and every record before it have had their rows handed to `write`. */
  position(): number;
}

export interface AcctWriterOptions {
  flushMs?: number;
  maxBatch?: number;
  /** Who writes, as acct_quarantine records it. */
  source?: string;
  /** Buffered rows from which `backlogged` is true (callers refuse new work until it drains). */
  maxBacklog?: number;
  checkpoint?: AcctCheckpoint;
}

/** What `freight show status` reports about a writer. */
export interface AcctWriterStatus {
  /** Rows buffered, not yet committed. */
  backlog: number;
  /** Rows in acct_quarantine (every writer's). */
  quarantined: number;
  /** A batch failed and is being retried; the last store error. */
  retrying: boolean;
  lastError: string | null;
  /** Rows were let go from memory because the store stayed down (replayed from the log at start). */
  overflowed: boolean;
}

/** Past this many times `maxBacklog`, a writer with a checkpoint lets rows go: its log still has them. */
const OVERFLOW_FACTOR = 4;

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
  private readonly maxBacklog: number;
  private readonly quarantine: AcctQuarantine;
  private readonly checkpoint: AcctCheckpoint | null;
  private readonly cursor: AcctCursor | null;
  private committedAt: number | null = null;
  private buffer: AcctRecord[] = [];
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private lastError: string | null = null;
  private overflowed = false;
  private closed = false;
  private readonly writeBatch: (rows: AcctRecord[], at: number | null) => number;

  constructor(store: AcctStore, opts: AcctWriterOptions = {}) {
    if (store.readonly) throw new FreightError('ACCT_READONLY', 'AcctWriter needs a read-write AcctStore');
    this.db = store.db;
    this.flushMs = opts.flushMs ?? 100;
    this.maxBatch = opts.maxBatch ?? 1000;
    this.maxBacklog = opts.maxBacklog ?? 50_000;
    this.quarantine = new AcctQuarantine(this.db);
    this.checkpoint = opts.checkpoint ?? null;
    this.cursor = this.checkpoint ? new AcctCursor(this.db, this.checkpoint.source) : null;
    this.committedAt = this.cursor?.read() ?? null;
    const source = opts.source ?? this.checkpoint?.source ?? 'writer';
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO acct (${ACCT_COLUMNS.join(', ')}) VALUES (${ACCT_COLUMNS.map(() => '?').join(', ')})`,
    );
    const addRollups = rollupWriter(this.db);
    const tx = this.db.transaction((rows: AcctRecord[], at: number | null) => {
      const rollup = new RollupBatch();
      let inserted = 0;
      for (const rec of rows) {
        try {
          validateRecord(rec);
          // changes === 0 means the dedupe key was seen before: the row and its rollup are skipped.
          if (insert.run(rowValues(rec)).changes !== 1) continue;
        } catch (err) {
          // A store failure aborts the whole batch (kept, retried); a row failure costs only that row.
          if (!isRowError(err)) throw err;
          this.quarantine.add(source, rec, err);
          log.warn('accounting row quarantined', {
            type: rec.type,
            rcpt: rec.rcpt,
            error: errorMessage(err),
          });
          continue;
        }
        inserted++;
        rollup.add(rec);
      }
      addRollups(rollup);
      if (at !== null && this.cursor) this.cursor.write(at);
      return inserted;
    });
    this.writeBatch = (rows, at) => tx.immediate(rows, at);
  }

  /** Rows buffered but not yet committed. */
  get pending(): number {
    return this.buffer.length;
  }

  /** True while so many rows wait that callers should refuse new work (intake answers 4xx). */
  get backlogged(): boolean {
    return this.buffer.length >= this.maxBacklog;
  }

  /** A batch failed and waits for its retry. */
  get retrying(): boolean {
    return this.failures > 0;
  }

  /** The committed cursor of the checkpoint's log (null without one, or before the first commit). */
  get committedPosition(): number | null {
    return this.committedAt;
  }

  status(): AcctWriterStatus {
    let quarantined = -1;
    try {
      quarantined = this.quarantine.total();
    } catch (err) {
      log.warn('cannot count quarantined accounting rows', { error: errorMessage(err) });
    }
    return {
      backlog: this.buffer.length,
      quarantined,
      retrying: this.failures > 0,
      lastError: this.lastError,
      overflowed: this.overflowed,
    };
  }

  /** Queue a row. A row the database would refuse is quarantined when its batch is written. */
  write(rec: AcctRecord): void {
    if (this.closed) throw new FreightError('ACCT_WRITER_CLOSED', 'write after AcctWriter.close()');
    if (this.buffer.length >= this.maxBacklog * OVERFLOW_FACTOR && this.checkpoint) {
      this.overflow();
      return;
    }
    this.buffer.push(rec);
    if (this.failures > 0) return;
    if (this.buffer.length >= this.maxBatch) this.flush();
    else this.schedule(this.flushMs);
  }

  /**
   * The store has been down so long that the buffer reached its hard bound. Rows derived from a log
   * can be let go: the cursor freezes before them, so the next start replays them from the log.
   */
  private overflow(): void {
    if (!this.overflowed)
      log.error('accounting store unavailable too long; rows are kept only in the log until restart', {
        buffered: this.buffer.length,
        error: this.lastError,
      });
    this.overflowed = true;
  }

  /**
   * Commit everything buffered now (and the checkpoint's position). False if rows stay buffered for a
   * retry, or were let go to the log (overflow).
   */
  flush(): boolean {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    // Taken before the batches: every row of a record before it is in the buffer now.
    const at = this.overflowed ? null : (this.checkpoint?.position() ?? null);
    const moved = at !== null && at !== this.committedAt;
    if (this.buffer.length === 0 && !moved) return !this.overflowed;
    do {
      const batch = this.buffer.slice(0, this.maxBatch);
      const last = batch.length === this.buffer.length;
      try {
        this.writeBatch(batch, last && moved ? at : null);
      } catch (err) {
        this.retryLater(err);
        return false;
      }
      this.failures = 0;
      this.lastError = null;
      this.buffer.splice(0, batch.length);
      if (last && moved) this.committedAt = at;
    } while (this.buffer.length > 0);
    return !this.overflowed;
  }

  private retryLater(err: unknown): void {
    this.failures++;
    this.lastError = errorMessage(err);
    const delay = Math.min(5000, this.flushMs * 2 ** Math.min(this.failures, 6));
    log.warn('accounting batch not written; will retry', {
      rows: this.buffer.length,
      error: this.lastError,
      retryMs: delay,
    });
    if (!this.closed) this.schedule(delay);
  }

  /**
   * Flush and stop. Retries a locked database a few times before giving up loudly; rows let go to the
   * log (overflow) are not this writer's to lose, the next start replays them.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (let attempt = 0; attempt < 5; attempt++) {
      this.flush();
      if (this.buffer.length === 0) return;
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
