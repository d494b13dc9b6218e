/**
 * Main-thread side of persistence: a worker thread (persist-worker.ts) owns every SQLite handle. The main
 * thread only posts messages — counter changes every snapshot interval, rejection records in batches —
 * so no disk operation is ever on the reply path.
 */
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AcctRecord } from '../acct/record.js';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { CounterBatch } from './counter-batch.js';
import type { KeySnapshot } from './key-counters.js';

export type ToWorker =
  | { type: 'changes'; batch: CounterBatch }
  | { type: 'rejections'; records: AcctRecord[] }
  | { type: 'close' };

export type ToMain =
  | { type: 'ready' }
  | { type: 'restored'; snapshots: KeySnapshot[] }
  | { type: 'health'; store: 'counters'; ok: boolean }
  | { type: 'closed' };

const RECORDS_PER_MESSAGE = 100;

export interface PersistenceEvents {
  /** Saved counters were loaded (at start, or when the store comes back). */
  onRestored(snapshots: KeySnapshot[]): void;
  onHealth(store: 'counters', ok: boolean): void;
}

/** Where counters are kept: next to the accounting database, in their own small SQLite file. */
export function countersPath(acctDb: string): string {
  return join(dirname(acctDb), 'policy-counters.db');
}

/**
 * The worker runs the module next to this one: .js after a build; under tsx (development, tests) the
 * worker does not inherit tsx's loader hooks, so it registers them before importing the .ts module.
 */
function startWorker(workerData: { countersPath: string; acctDb: string }): Worker {
  const ext = extname(fileURLToPath(import.meta.url));
  const url = new URL(`./persist-worker${ext}`, import.meta.url);
  if (ext !== '.ts') return new Worker(url, { workerData });
  const boot = `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

export class PolicyPersistence {
  private readonly worker: Worker;
  private records: AcctRecord[] = [];
  private recordTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Resolves when the worker has tried its stores once (restored or reported unavailable). */
  readonly ready: Promise<void>;

  constructor(acctDb: string, events: PersistenceEvents, log: Logger, path = countersPath(acctDb)) {
    this.worker = startWorker({ countersPath: path, acctDb });
    this.ready = new Promise((resolve) => {
      this.worker.on('message', (msg: ToMain) => {
        if (msg.type === 'ready') resolve();
        else if (msg.type === 'restored') events.onRestored(msg.snapshots);
        else if (msg.type === 'health') events.onHealth(msg.store, msg.ok);
      });
      this.worker.once('exit', () => resolve());
    });
    this.worker.on('error', (err) => {
      log.error('persistence worker failed; counters are no longer saved', { error: errorMessage(err) });
      events.onHealth('counters', false);
    });
  }

  /** Hand changed counters to the worker; the batch's buffer moves to it (not copied). */
  saveCounters(batch: CounterBatch | null): void {
    if (this.closed || batch === null) return;
    this.worker.postMessage({ type: 'changes', batch } satisfies ToWorker, [
      batch.numbers.buffer as ArrayBuffer,
    ]);
  }

  /**
   * Queue a rejection record; records go to the worker every 50 ms, or sooner in batches of
   * RECORDS_PER_MESSAGE: copying a message blocks the main thread for as long as its records take to
   * clone (the `policy` benchmark's p99 shows what a larger batch costs).
   */
  recordRejection(rec: AcctRecord): void {
    if (this.closed) return;
    this.records.push(rec);
    if (this.records.length >= RECORDS_PER_MESSAGE) this.flushRecords();
    else if (!this.recordTimer) {
      this.recordTimer = setTimeout(() => this.flushRecords(), 50);
      this.recordTimer.unref();
    }
  }

  /** Send what is queued, let the worker write it, and stop the worker. */
  async close(lastChanges: CounterBatch | null): Promise<void> {
    if (this.closed) return;
    this.flushRecords();
    this.saveCounters(lastChanges);
    this.closed = true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 15_000);
      this.worker.on('message', (msg: ToMain) => {
        if (msg.type === 'closed') {
          clearTimeout(timer);
          resolve();
        }
      });
      this.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    });
    await this.worker.terminate();
  }

  private flushRecords(): void {
    if (this.recordTimer) {
      clearTimeout(this.recordTimer);
      this.recordTimer = null;
    }
    if (this.records.length === 0) return;
    this.post({ type: 'rejections', records: this.records });
    this.records = [];
  }

  private post(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }
}
