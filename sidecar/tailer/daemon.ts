/**
 * `freight tailer`: follows the maillog and turns every recipient event into an accounting row
 * (path=postfix). Rows, suppressions, queue-file state and the byte position commit in one SQLite
 * transaction every `commitMs`, so a crash at any moment resumes exactly after the last committed line.
 */
import { AcctStore } from '../acct/store.js';
import { BounceClassifier } from '../classify/classifier.js';
import { errorMessage } from '../common/errors.js';
import { createLogger, type Logger } from '../common/log.js';
import type { FreightConfig } from '../config/model.js';
import { SuppressionList } from '../suppress/list.js';
import { LogFollower } from './follow.js';
import { Ingest } from './ingest.js';
import { type CommitBatch, type Suppressor, TailerStore } from './offset-store.js';

export interface TailerOptions {
  /** Idle poll interval (ms). */
  pollMs?: number;
  /** Longest time rows wait before they are committed (ms). */
  commitMs?: number;
  /** Commit early when this many rows are waiting. */
  maxBatchRows?: number;
  settleMs?: number;
  log?: Logger;
}

const PRUNE_EVERY_MS = 10 * 60_000;

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
      // An unusable address (e.g. empty) must not roll back the rows committed with it.
      log.warn('not suppressing bounced address', { address: req.address, error: errorMessage(err) });
    }
  };
}

export class Tailer {
  private readonly store: AcctStore;
  private readonly tstore: TailerStore;
  private readonly follower: LogFollower;
  private readonly ingest: Ingest;
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly commitMs: number;
  private readonly maxBatchRows: number;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private dirtyPosition = false;
  private lastCommit = Date.now();
  private lastPrune = Date.now();
  private lastUnknown = 0;

  private constructor(config: FreightConfig, opts: TailerOptions) {
    this.log = opts.log ?? createLogger('tailer');
    this.pollMs = opts.pollMs ?? 100;
    this.commitMs = opts.commitMs ?? 200;
    this.maxBatchRows = opts.maxBatchRows ?? 5000;
    this.store = AcctStore.open(config.global.acctDb);
    this.tstore = new TailerStore(this.store, 'maillog', makeSuppressor(this.store, this.log));
    this.ingest = new Ingest({
      timeZone: config.global.maillogTimezone,
      classifier: BounceClassifier.load({ operatorRules: operatorRules(config) }),
      engine: config.global.smtpListener,
      persistState: true,
    });
    this.ingest.correlator.load(this.tstore.queueStates());
    this.follower = new LogFollower(config.global.maillog, { settleMs: opts.settleMs, log: this.log });
  }

  static async start(config: FreightConfig, opts: TailerOptions = {}): Promise<Tailer> {
    const t = new Tailer(config, opts);
    const saved = t.tstore.position();
    await t.follower.start(saved);
    t.log.info('following maillog', { path: config.global.maillog, offset: saved?.offset ?? 0 });
    t.loop = t.run();
    return t;
  }

  /** Apply a new config: engine address for hand-offs (the maillog path and database need a restart). */
  reload(config: FreightConfig): void {
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

  /** Commit; on failure (database locked past busy_timeout) retry the same batch until it goes in. */
  private async commit(): Promise<void> {
    const b = this.batch();
    this.dirtyPosition = false;
    for (let attempt = 0; ; attempt++) {
      try {
        this.tstore.commit(b);
        break;
      } catch (err) {
        this.log.warn('accounting commit failed; retrying', {
          rows: b.rows.length,
          error: errorMessage(err),
        });
        if (this.stopping && attempt >= 5) throw err;
        await sleep(Math.min(5000, 100 * 2 ** Math.min(attempt, 6)));
      }
    }
    this.lastCommit = Date.now();
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
          await this.commit();
        }
        continue;
      }
      if (this.dirtyPosition) await this.commit();
      if (Date.now() - this.lastPrune > PRUNE_EVERY_MS) {
        this.lastPrune = Date.now();
        this.ingest.correlator.prune(Date.now());
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, this.pollMs);
      });
      this.wake = null;
    }
  }

  /** Stop: finish the current read, commit rows and position, close the database. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    if (this.dirtyPosition) await this.commit();
    await this.follower.close();
    this.store.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
