/**
 * Free space on the spool's filesystem, refreshed every 2 s off the hot path (statfs), so intake can
 * answer 4xx "disk nearly full" from memory before a write would fail.
 */
import fs from 'node:fs';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';

export class SpoolDiskSpace {
  readonly minFreeBytes: number;
  private readonly dir: string;
  private readonly log: Logger;
  private free = Number.POSITIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;

  constructor(dir: string, minFreeBytes: number, log: Logger) {
    this.dir = dir;
    this.minFreeBytes = minFreeBytes;
    this.log = log;
  }

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), 2000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async refresh(): Promise<void> {
    try {
      const st = await fs.promises.statfs(this.dir);
      this.free = st.bavail * st.bsize;
    } catch (err) {
      this.log.warn('statfs on the spool failed', { error: errorMessage(err) });
    }
  }

  get freeBytes(): number {
    return this.free;
  }

  /** Why intake should refuse new mail now, or null. */
  refusal(): string | null {
    return this.free < this.minFreeBytes ? 'spool disk nearly full' : null;
  }
}
