/**
 * Freight's ratio triggers (beyond PowerMTA): a rule fires when the share of matching replies over a
 * sliding window reaches a threshold (`threshold=5%/10m,min-samples=50`), not on one reply. To keep a
 * queue from flapping, a trigger that fired re-arms only once the ratio has fallen well below the
 * threshold (hysteresis), and the rate controller cuts the message rate multiplicatively but recovers it
 * step by step, not before a hold period after the last cut (AIMD).
 */
import type { Rate } from '../config/model.js';

/** Most buckets a window keeps; longer windows use wider buckets (a 10m window: 1 s buckets). */
const MAX_BUCKETS = 600;

/** Counts samples and hits over the last `windowMs`, in a ring of time buckets. */
export class RatioWindow {
  readonly windowMs: number;
  private readonly bucketMs: number;
  private readonly hits: Int32Array;
  private readonly totals: Int32Array;
  /** Bucket index (time / bucketMs) each slot currently holds. */
  private readonly slotOf: Float64Array;
  private sumHits = 0;
  private sumTotal = 0;

  constructor(windowMs: number) {
    this.windowMs = Math.max(1000, windowMs);
    this.bucketMs = Math.max(1000, Math.ceil(this.windowMs / MAX_BUCKETS));
    const n = Math.ceil(this.windowMs / this.bucketMs);
    this.hits = new Int32Array(n);
    this.totals = new Int32Array(n);
    this.slotOf = new Float64Array(n).fill(-1);
  }

  add(hit: boolean, now: number): void {
    this.expire(now);
    const b = Math.floor(now / this.bucketMs);
    const i = b % this.totals.length;
    if (this.slotOf[i] !== b) {
      this.sumHits -= this.hits[i]!;
      this.sumTotal -= this.totals[i]!;
      this.hits[i] = 0;
      this.totals[i] = 0;
      this.slotOf[i] = b;
    }
    this.totals[i]!++;
    this.sumTotal++;
    if (hit) {
      this.hits[i]!++;
      this.sumHits++;
    }
  }

  /** Samples and hits inside the window ending at `now`. */
  counts(now: number): { samples: number; hits: number } {
    this.expire(now);
    return { samples: this.sumTotal, hits: this.sumHits };
  }

  private expire(now: number): void {
    const oldest = Math.floor(now / this.bucketMs) - this.totals.length + 1;
    for (let i = 0; i < this.totals.length; i++) {
      if (this.slotOf[i]! >= 0 && this.slotOf[i]! < oldest) {
        this.sumHits -= this.hits[i]!;
        this.sumTotal -= this.totals[i]!;
        this.hits[i] = 0;
        this.totals[i] = 0;
        this.slotOf[i] = -1;
      }
    }
  }
}

export interface RatioTriggerSpec {
  /** Fire at or above this share of matching replies (0..1). */
  ratio: number;
  windowMs: number;
  minSamples: number;
  /** Re-arm once the ratio is below `ratio * rearmFraction` (default 0.5). */
  rearmFraction?: number;
}

export interface RatioState {
  samples: number;
  hits: number;
  ratio: number;
  armed: boolean;
}

/** One threshold rule on one queue. */
export class RatioTrigger {
  readonly spec: Required<RatioTriggerSpec>;
  private readonly window: RatioWindow;
  private armed = true;

  constructor(spec: RatioTriggerSpec) {
    this.spec = { rearmFraction: 0.5, ...spec, minSamples: Math.max(1, spec.minSamples) };
    this.window = new RatioWindow(spec.windowMs);
  }

  /** Count one reply (`hit`: it matched the rule); true when the trigger fires on this reply. */
  record(hit: boolean, now: number): boolean {
    this.window.add(hit, now);
    const { samples, hits } = this.window.counts(now);
    if (samples < this.spec.minSamples) return false;
    const ratio = hits / samples;
    if (this.armed) {
      if (ratio >= this.spec.ratio) {
        this.armed = false;
        return true;
      }
    } else if (ratio < this.spec.ratio * this.spec.rearmFraction) {
      this.armed = true;
    }
    return false;
  }

  state(now: number): RatioState {
    const { samples, hits } = this.window.counts(now);
    return { samples, hits, ratio: samples ? hits / samples : 0, armed: this.armed };
  }
}

export interface AimdOptions {
  /** Factor applied on each cut (default 0.5). */
  decrease?: number;
  /** Share of the ceiling added back per recovery step (default 0.1). */
  increaseShare?: number;
  /** Time between recovery steps (default 1 minute). */
  stepMs?: number;
  /** No recovery until this long after the last cut (default: 5 minutes), so one cut is not undone at once. */
  holdMs?: number;
  /** The rate never goes below this share of the ceiling (default 0.05). */
  floorShare?: number;
}

/**
 * Per-queue message-rate controller: multiplicative decrease when a ratio trigger fires, additive
 * recovery towards the ceiling (the configured `max-msg-rate`, or the observed rate when unlimited).
 * Rates are messages per millisecond internally; `limit()` returns a config-style Rate.
 */
export class AimdRate {
  private readonly o: Required<AimdOptions>;
  private ceiling: number | null;
  private current: number | null = null;
  private lastCut = 0;

  constructor(opts: AimdOptions = {}) {
    this.o = {
      decrease: 0.5,
      increaseShare: 0.1,
      stepMs: 60_000,
      holdMs: 300_000,
      floorShare: 0.05,
      ...opts,
    };
    this.ceiling = null;
  }

  /**
   * Cut the rate. `max` is the configured rate (null = unlimited); `observedPerMs` the queue's recent
   * send rate, the starting point when there is no configured rate. Returns the new limit.
   */
  decrease(now: number, max: Rate | null, observedPerMs: number): Rate {
    const configured = max ? max.count / max.perMs : null;
    const base = this.limitPerMs(now, max) ?? configured ?? observedPerMs;
    this.ceiling = configured ?? Math.max(this.ceiling ?? 0, observedPerMs, base);
    const floor = this.ceiling * this.o.floorShare;
    this.current = Math.max(floor, base * this.o.decrease);
    this.lastCut = now;
    return toRate(this.current);
  }

  /** The limit in force now (null: no cut is active, the configured rate applies). */
  limit(now: number, max: Rate | null): Rate | null {
    const perMs = this.limitPerMs(now, max);
    return perMs === null ? null : toRate(perMs);
  }

  private limitPerMs(now: number, max: Rate | null): number | null {
    if (this.current === null || this.ceiling === null) return null;
    const ceiling = max ? max.count / max.perMs : this.ceiling;
    const sinceHold = now - this.lastCut - this.o.holdMs;
    const steps = sinceHold < 0 ? 0 : Math.floor(sinceHold / this.o.stepMs) + 1;
    const value = this.current + steps * this.o.increaseShare * ceiling;
    if (value >= ceiling) {
      this.current = null;
      return null;
    }
    return Math.min(value, ceiling);
  }
}

/** Messages per hour, the unit operators read. */
function toRate(perMs: number): Rate {
  return { count: Math.max(1, Math.round(perMs * 3_600_000)), perMs: 3_600_000 };
}
