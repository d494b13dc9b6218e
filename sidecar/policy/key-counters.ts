/**
 * The counters of one (limit, key): the live form the limiter counts in and the saved form persistence
 * and restart use. Their own module so that the limiter and the batch encoder both use them without
 * importing each other.
 */
import type { Rate } from '../config/model.js';
import type { KeyOverride, PolicyLimit } from './limits-config.js';
import type { SlidingWindow } from './sliding-window.js';

export interface KeyCounters {
  limit: PolicyLimit;
  key: string;
  rates: Rate[];
  windows: SlidingWindow[];
  override: KeyOverride | null;
  /** Requests refused by this limit for this key (since the counters were first created). */
  rejected: number;
  lastRejectedAt: number;
}

/** Saved form of one key's counters (persistence and restart). */
export interface KeySnapshot {
  limit: string;
  key: string;
  rejected: number;
  lastRejectedAt: number;
  windows: Array<{ perMs: number; head: number; amounts: number[] }>;
}
