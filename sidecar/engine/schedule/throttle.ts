/**
 * Per-queue throttles. Rates (max-msg-rate, max-connect-rate) are paced evenly (GCRA with a small
 * catch-up allowance): `3600/h` lets one message through per second rather than 3600 at once, so the rate measured at
 * the remote holds over any window, not just over the configured period. A rate counter for
 * `freight show` keeps one-second buckets of the last minute.
 */
import type { Rate } from '../../config/model.js';

const CATCH_UP_MS = 100;

export class PacedRate {
  private rate: Rate | null;
  /** Earliest time the next event may happen (theoretical arrival time). */
  private nextAt = 0;

  constructor(rate: Rate | null) {
    this.rate = rate;
  }

  /** A new limit applies from the next event on; the pacing already earned is kept. */
  setRate(rate: Rate | null): void {
    const old = this.intervalMs();
    this.rate = rate;
    const fresh = this.intervalMs();
    if (old > 0 && fresh < old) this.nextAt -= old - fresh;
  }

  intervalMs(): number {
    if (!this.rate || this.rate.count <= 0) return 0;
    return this.rate.perMs / this.rate.count;
  }

  /** 0 if an event may happen now (and it is counted), else milliseconds to wait (nothing counted). */
  take(now: number): number {
    const interval = this.intervalMs();
    if (interval === 0) return 0;
    if (this.nextAt > now) return Math.ceil(this.nextAt - now);
    // A late timer (event-loop lag) may catch up by up to CATCH_UP_MS or one interval, so lag does not
    // erode the rate; an idle period earns no burst beyond that.
    this.nextAt = Math.max(this.nextAt, now - Math.max(interval, CATCH_UP_MS)) + interval;
    return 0;
  }

  /** Gives back an event taken but not used (e.g. the message had no recipient left to send). */
  giveBack(): void {
    this.nextAt -= this.intervalMs();
  }
}

/** Events per minute over the last minute, in one-second buckets (O(1) per event). */
export class RateMeter {
  private readonly buckets = new Float64Array(60);
  private readonly stamps = new Float64Array(60);

  add(now: number, n = 1): void {
    const sec = Math.floor(now / 1000);
    const i = sec % 60;
    if (this.stamps[i] !== sec) {
      this.stamps[i] = sec;
      this.buckets[i] = 0;
    }
    this.buckets[i] = (this.buckets[i] ?? 0) + n;
  }

  perMinute(now: number): number {
    const sec = Math.floor(now / 1000);
    let total = 0;
    for (let i = 0; i < 60; i++) {
      const stamp = this.stamps[i] ?? 0;
      if (sec - stamp < 60) total += this.buckets[i] ?? 0;
    }
    return total;
  }
}
