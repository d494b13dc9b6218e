/**
 * `freight tailer`: follows the maillog and turns every recipient event into an accounting row
 * (path=postfix). Rows, suppressions, queue-file state and the byte position commit in one SQLite
 * transaction every `commitMs`, so a crash at any moment resumes exactly after the last committed line.
 *
 * While the database refuses a batch (locked, full) the batch is kept and retried with capped backoff and
 * nothing more is read: the position stays at the last committed line and memory stays at one batch.
 * Rows the database refuses one by one are quarantined by the store and never block the batch.
 */

import { isRowError, writeErrorCode } from '../acct/quarantine.js';
import { AcctStore } from '../acct/store.js';
import { BounceClassifier } from '../classify/classifier.js';
import { errorMessage } from '../common/errors.js';
import { createLogger, type Logger } from '../common/log.js';
import type { FreightConfig } from '../config/model.js';
import { SuppressionList } from '../suppress/list.js';
import { LogFollower } from './follow.js';
import { Ingest } from './ingest.js';
import { type CommitBatch, type Suppressor, TailerStore } from './offset-store.js';
import { RetentionSchedule } from './retention.js';

export interface TailerOptions {
  /** Idle poll interval (ms). */
  pollMs?: number;
  /** Longest time rows wait before they are committed (ms). */
  commitMs?: number;
  /** Commit early when this many rows are waiting. */
  maxBatchRows?: number;
  settleMs?: number;
  /** How long one commit waits for another process's write lock before backing off (ms). */
  busyTimeoutMs?: number;
  log?: Logger;
}

const PRUNE_EVERY_MS = 10 * 60_000;
/** Backoff between attempts at a refused batch: doubling from the first, capped. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;

export function operatorRules(config: FreightConfig) {
  return config.bounceCategoryPatterns.map((p) => ({
    pattern: p.pattern,
    category: p.category,
    source: `${p.file}:${p.line}`,
  }));
}

export function makeSuppressor(store: AcctStore, log: Logger): Suppressor {
  const list = SuppressionList.open(store);
  return (req) => {
    try {
      list.add({ address: req.address, reason: req.reason, source: 'bounce' });
    } catch (err) {
      // A failing store fails the whole commit, which is retried; an unusable address (e.g. empty) must
      // not roll back the rows committed with it.
      if (writeErrorCode(err).startsWith('SQLITE_') && !isRowError(err)) throw err;
      log.warn('not suppressing bounced address', { address: req.address, error: errorMessage(err) });
    }
  };
}

export class Tailer {
  private readonly store: AcctStore;
  private readonly tstore: TailerStore;
  private readonly follower: LogFollower;
  private readonly ingest: Ingest;
  private readonly retention: RetentionSchedule;
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly commitMs: number;
  private readonly maxBatchRows: number;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private dirtyPosition = false;
  /** The batch the database refused, kept until it goes in; nothing more is read meanwhile. */
  private pending: CommitBatch | null = null;
  private failures = 0;
  private retryAt = 0;
  private lastCommit = Date.now();
  private lastPrune = Date.now();
  private lastUnknown = 0;

  private constructor(config: FreightConfig, opts: TailerOptions) {
    this.log = opts.log ?? createLogger('tailer');
    this.pollMs = opts.pollMs ?? 100;
    this.commitMs = opts.commitMs ?? 200;
    this.maxBatchRows = opts.maxBatchRows ?? 5000;
    // Short: a commit blocks the event loop while it waits, and the backoff below does the waiting.
    this.store = AcctStore.open(config.global.acctDb, { busyTimeoutMs: opts.busyTimeoutMs ?? 2000 });
    this.tstore = new TailerStore(this.store, 'maillog', makeSuppressor(this.store, this.log));
    this.ingest = new Ingest({
      timeZone: config.global.maillogTimezone,
      classifier: BounceClassifier.load({ operatorRules: operatorRules(config) }),
      engine: config.global.smtpListener,
      persistState: true,
    });
    this.ingest.correlator.load(this.tstore.queueStates());
    this.follower = new LogFollower(config.global.maillog, { settleMs: opts.settleMs, log: this.log });
    this.retention = new RetentionSchedule(this.store, this.log.child('retention'));
  }

  static async start(config: FreightConfig, opts: TailerOptions = {}): Promise<Tailer> {
    const t = new Tailer(config, opts);
    try {
      t.retention.set(config.global.acctPruneSchedule, config.global.acctRetention);
      const saved = t.tstore.position();
      await t.follower.start(saved);
      t.log.info('following maillog', { path: config.global.maillog, offset: saved?.offset ?? 0 });
    } catch (err) {
      await t.retention.stop();
      await t.follower.close();
      t.store.close();
      throw err;
    }
    t.loop = t.run();
    return t;
  }

  /**
   * Apply a new config: retention and its schedule, engine address (maillog and database need a
   * restart). The schedule goes first: an invalid one refuses the whole reload.
   */
  reload(config: FreightConfig): void {
    this.retention.set(config.global.acctPruneSchedule, config.global.acctRetention);
    this.ingest.rows.setEngine(config.global.smtpListener);
  }

  get stats() {
    return this.ingest.stats;
  }

  private batch(): CommitBatch {
    const { rows, suppress } = this.ingest.take();
    const { upserts, deletes } = this.ingest.correlator.drainChanges();
    return { rows, suppress, upserts, deletes, position: this.follower.position() };
  }

  /** Write the pending batch (taking a new one if none is pending); false while the store refuses it. */
  private commit(): boolean {
    const b = (this.pending ??= this.batch());
    this.dirtyPosition = false;
    try {
      const r = this.tstore.commit(b);
      if (r.quarantined > 0) {
        this.log.warn('accounting rows refused by the database; quarantined (freight acct quarantine)', {
          rows: r.quarantined,
        });
      }
    } catch (err) {
      this.failures++;
      const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(this.failures - 1, 10));
      this.retryAt = Date.now() + delay;
      // Every attempt while the delay grows, then about once a minute.
      if (delay < RETRY_MAX_MS || this.failures % 12 === 0) {
        this.log.warn('accounting commit failed; holding the batch and reading nothing until it goes in', {
          rows: b.rows.length,
          attempt: this.failures,
          retryInMs: delay,
          code: writeErrorCode(err),
          error: errorMessage(err),
        });
      }
      return false;
    }
    if (this.failures > 0) this.log.info('accounting commit went in', { attempts: this.failures + 1 });
    this.pending = null;
    this.failures = 0;
    this.lastCommit = Date.now();
    this.reportUnknown();
    return true;
  }

  private reportUnknown(): void {
    const unknown = this.ingest.stats.kinds.unknown ?? 0;
    if (unknown > this.lastUnknown) {
      this.log.warn('unrecognised maillog lines', {
        count: unknown - this.lastUnknown,
        sample: this.ingest.stats.unknownSamples.at(-1),
      });
      this.lastUnknown = unknown;
    }
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.pending) {
        if (Date.now() < this.retryAt || !this.commit()) {
          await this.idle(this.retryAt - Date.now());
          continue;
        }
      }
      let chunk = null;
      try {
        chunk = await this.follower.read();
      } catch (err) {
        this.log.error('reading maillog failed; retrying', { error: errorMessage(err) });
      }
      if (chunk) {
        this.ingest.text(chunk.text);
        this.dirtyPosition = true;
        if (this.ingest.out.length >= this.maxBatchRows || Date.now() - this.lastCommit >= this.commitMs) {
          this.commit();
        }
        continue;
      }
      if (this.dirtyPosition) this.commit();
      if (Date.now() - this.lastPrune > PRUNE_EVERY_MS) {
        this.lastPrune = Date.now();
        this.ingest.correlator.prune(Date.now());
      }
      await this.idle(this.pollMs);
    }
  }

  /** Sleep up to `ms`; stop() cuts it short. */
  private async idle(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      setTimeout(resolve, Math.max(0, ms));
    });
    this.wake = null;
  }

  /**
   * Stop: finish the current read, commit rows and position once more, close the database. If the
   * database still refuses them they are not lost: the position on disk is the last committed one, so
   * the next start reads those lines again.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    await this.retention.stop();
    if ((this.pending || this.dirtyPosition) && !this.commit()) {
      this.log.error(
        'stopping with uncommitted rows; they are read again from the maillog on the next start',
        {
          rows: this.pending?.rows.length ?? 0,
          offset: this.tstore.position()?.offset ?? 0,
        },
      );
    }
    await this.follower.close();
    this.store.close();
  }
}
