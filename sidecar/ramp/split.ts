/**
 * The measured split: how many distinct recipients of each domain the ramp sent to each path in the
 * current share period. Postfix asks about every recipient at least twice (smtpd, then delivery, then
 * every retry), so answers are deduplicated per recipient through a bounded most-recently-asked map;
 * a recipient asked again after being evicted, or after a daemon restart, is counted again. That makes
 * the counts exact for normal traffic and an over-count only for recipients retried long after intake.
 */
import type { SplitDelta } from './state.js';

export type RampPath = 'engine' | 'postfix';

export class SplitCounter {
  private readonly seen = new Map<string, number>();
  private pending = new Map<string, SplitDelta>();

  /** `capacity` bounds memory: about 150 bytes per remembered recipient. */
  constructor(private readonly capacity = 200_000) {}

  /** Count one answer. `rcpt` must be normalised; `since` is the share period the answer was given in. */
  record(domain: string, rcpt: string, since: number, path: RampPath): void {
    const prev = this.seen.get(rcpt);
    if (prev !== undefined) {
      this.seen.delete(rcpt);
      this.seen.set(rcpt, prev);
      // Within one share period the path is a function of the recipient, so one count per period suffices.
      if (prev === since) return;
    }
    this.seen.set(rcpt, since);
    if (this.seen.size > this.capacity) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    this.add(domain, since, path, 1);
  }

  /** Counts recorded since the last take (the daemon adds them to the database). */
  take(): SplitDelta[] {
    const out = [...this.pending.values()].filter((d) => d.engine !== 0 || d.postfix !== 0);
    this.pending = new Map();
    return out;
  }

  /** Put back counts a failed flush could not store, so they go out with the next one. */
  restore(deltas: SplitDelta[]): void {
    for (const d of deltas) {
      this.add(d.domain, d.since, 'engine', d.engine);
      this.add(d.domain, d.since, 'postfix', d.postfix);
    }
  }

  private add(domain: string, since: number, path: RampPath, n: number): void {
    const key = `${domain}\u0000${since}`;
    let d = this.pending.get(key);
    if (!d) {
      d = { domain, since, engine: 0, postfix: 0 };
      this.pending.set(key, d);
    }
    d[path] += n;
  }
}
