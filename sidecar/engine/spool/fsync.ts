/**
 * How the spool fsyncs: on the event loop while the disk answers quickly, in libuv's thread pool after a
 * slow answer. On this kind of VM the thread-pool hand-off (a futex wake there, an eventfd wake back)
 * costs more CPU than the fsync itself (it shows in the engine CPU per message that
 * `bench/engine-inject.bench.ts --hold` reports). Blocking the loop for one round's fsyncs is cheaper
 * than the hand-off; blocking it on a slow or failing disk would stall every session. So the
 * runner keeps a moving average of fsync latency (inline and pooled alike): above `slowMs` it uses the
 * pool, and it comes back inline once the average is under half of that. A single outlier (behind
 * another process's big fsync) does not switch it. Directory fsyncs go through here too, so every fsync
 * the spool makes has one seam.
 */
import fs from 'node:fs';

export interface FsyncRunnerOptions {
  /** Average fsync latency (ms) above which fsyncs go to the thread pool. */
  slowMs?: number;
  now?: () => number;
}

/** Weight of the newest fsync in the moving average: about the last ten count. */
const ALPHA = 0.1;

export class FsyncRunner {
  private readonly slowMs: number;
  private readonly now: () => number;
  private avgMs = 0;
  private pooled = false;

  constructor(opts: FsyncRunnerOptions = {}) {
    this.slowMs = opts.slowMs ?? 5;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Whether the next fsync runs on the event loop. */
  get inline(): boolean {
    return !this.pooled;
  }

  /** fdatasync (`dataOnly`) or fsync `fd`; rejects with the system error. */
  async sync(fd: number, dataOnly: boolean): Promise<void> {
    const started = this.now();
    try {
      if (this.pooled)
        await new Promise<void>((resolve, reject) =>
          (dataOnly ? fs.fdatasync : fs.fsync)(fd, (err) => (err ? reject(err) : resolve())),
        );
      else if (dataOnly) fs.fdatasyncSync(fd);
      else fs.fsyncSync(fd);
    } finally {
      this.note(this.now() - started);
    }
  }

  /**
   * fsync a directory, so a file created, renamed or removed in it survives a power loss. Always in the
   * thread pool: it happens when a file is created, not once per commit round.
   */
  async syncDir(dir: string): Promise<void> {
    const fh = await fs.promises.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  private note(ms: number): void {
    this.avgMs += ALPHA * (ms - this.avgMs);
    if (!this.pooled && this.avgMs > this.slowMs) this.pooled = true;
    else if (this.pooled && this.avgMs < this.slowMs / 2) this.pooled = false;
  }
}

/** One per process: whether the disk is fast is a property of the disk, shared by journal and data. */
export const spoolFsync = new FsyncRunner();
