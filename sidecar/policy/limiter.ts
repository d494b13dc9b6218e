/**
 * In-memory counters of every `<policy-limit>`: one SlidingWindow per (limit, key, window). Checking and
 * counting are O(1) per limit; keys whose windows have emptied are swept, and changed keys are marked
 * dirty so that persistence copies only what changed.
 */
import { type CounterBatch, encodeCounterBatch } from './counter-batch.js';
import type { KeyCounters, KeySnapshot } from './key-counters.js';
import type { PolicyLimit } from './limits-config.js';
import { SlidingWindow } from './sliding-window.js';

export class LimitCounters {
  readonly keys = new Map<string, KeyCounters>();

  constructor(readonly limit: PolicyLimit) {}

  /** The key's counters, created on first use; null if the key is unlimited (override without rates). */
  get(key: string, now: number, dirty: Set<KeyCounters> | null): KeyCounters | null {
    let k = this.keys.get(key);
    if (!k) {
      const override = this.limit.overrides.get(key) ?? null;
      const rates = override ? override.windows : this.limit.windows;
      if (rates.length === 0) return null;
      k = {
        limit: this.limit,
        key,
        rates,
        windows: rates.map((r) => new SlidingWindow(r.perMs, now)),
        override,
        rejected: 0,
        lastRejectedAt: 0,
      };
      this.keys.set(key, k);
      dirty?.add(k);
    }
    return k;
  }
}

/** Index of the first window that `amount` more would overflow, or -1 if every window has room. */
export function overflowingWindow(k: KeyCounters, amount: number, now: number): number {
  for (let i = 0; i < k.windows.length; i++) {
    if (k.windows[i]!.count(now) + amount > k.rates[i]!.count) return i;
  }
  return -1;
}

export function addTo(k: KeyCounters, amount: number, now: number): void {
  for (const w of k.windows) w.add(amount, now);
}

export function removeFrom(k: KeyCounters, amount: number, at: number, now: number): void {
  for (const w of k.windows) w.remove(amount, at, now);
}

export class Limiter {
  readonly counters: LimitCounters[];
  /** Keys changed since the last snapshot; removed keys are in `removed`. */
  readonly dirty = new Set<KeyCounters>();
  readonly removed: Array<{ limit: string; key: string }> = [];
  /** Where an unfinished sweep goes on: the limit, and the position in its keys. */
  private sweeping: { limit: number; keys: Iterator<[string, KeyCounters]> } | null = null;

  constructor(limits: PolicyLimit[]) {
    this.counters = limits.map((l) => new LimitCounters(l));
  }

  /**
   * Forget keys with empty windows and no refusal in the last hour. A pass looks at no more than `budget`
   * keys per call and goes on at the next call (a Map iterator stays valid while keys come and go), so a
   * large key set is swept without holding up replies. Returns true when the pass is complete.
   */
  sweep(now: number, budget = Number.POSITIVE_INFINITY): boolean {
    this.sweeping ??= { limit: 0, keys: this.counters[0]?.keys.entries() ?? [].values() };
    const pass = this.sweeping;
    let looked = 0;
    while (pass.limit < this.counters.length) {
      const lc = this.counters[pass.limit]!;
      for (let e = pass.keys.next(); !e.done; e = pass.keys.next()) {
        const [key, k] = e.value;
        if (now - k.lastRejectedAt > 3_600_000 && k.windows.every((w) => w.isEmpty(now))) {
          lc.keys.delete(key);
          this.dirty.delete(k);
          this.removed.push({ limit: lc.limit.name, key });
        }
        if (++looked >= budget) return false;
      }
      pass.limit++;
      const next = this.counters[pass.limit];
      if (next) pass.keys = next.keys.entries();
    }
    this.sweeping = null;
    return true;
  }

  /**
   * Take up to `max` changes — removed keys first, then changed keys, longest-changed first — packed for
   * persistence; null if nothing changed.
   */
  takeChanges(max = Number.POSITIVE_INFINITY): CounterBatch | null {
    const gone = this.removed.splice(0, max);
    const keys: KeyCounters[] = [];
    for (const k of this.dirty) {
      if (keys.length + gone.length >= max) break;
      keys.push(k);
    }
    if (keys.length === this.dirty.size) this.dirty.clear();
    else for (const k of keys) this.dirty.delete(k);
    return encodeCounterBatch(keys, gone);
  }

  /** Every key, for a full save (after a reload re-creates counters). */
  allSnapshots(): KeySnapshot[] {
    return this.counters.flatMap((lc) => [...lc.keys.values()].map(snapshotOf));
  }

  /** Add saved counters into the live ones (windows matched by period; changed periods start empty). */
  restore(snaps: KeySnapshot[], now: number): number {
    const byName = new Map(this.counters.map((lc) => [lc.limit.name, lc]));
    let restored = 0;
    for (const s of snaps) {
      const lc = byName.get(s.limit);
      const k = lc?.get(s.key, now, this.dirty);
      if (!k) continue;
      for (const saved of s.windows) {
        const w = k.windows.find((x) => x.perMs === saved.perMs);
        if (w) w.merge(saved, now);
      }
      k.rejected += s.rejected;
      k.lastRejectedAt = Math.max(k.lastRejectedAt, s.lastRejectedAt);
      restored++;
    }
    return restored;
  }

  /**
   * Counters for a new set of limits (reload), keeping the counts of limits and windows that still exist.
   */
  rebuild(limits: PolicyLimit[], now: number): Limiter {
    const next = new Limiter(limits);
    next.restore(this.allSnapshots(), now);
    const kept = new Set(limits.map((l) => l.name));
    for (const lc of this.counters) {
      if (kept.has(lc.limit.name)) continue;
      for (const key of lc.keys.keys()) next.removed.push({ limit: lc.limit.name, key });
    }
    return next;
  }
}

function snapshotOf(k: KeyCounters): KeySnapshot {
  return {
    limit: k.limit.name,
    key: k.key,
    rejected: k.rejected,
    lastRejectedAt: k.lastRejectedAt,
    windows: k.windows.map((w) => ({ perMs: w.perMs, ...w.snapshot() })),
  };
}
