/**
 * Counter changes on their way to the persistence worker, packed into one Float64Array (transferred, not
 * copied) and one string of names. Posted as objects (an array of 31 amounts per window), the changes of
 * one snapshot interval cost the main thread a structured clone of tens of thousands of values, which
 * every request arriving meanwhile waited for (the `policy` benchmark's p99 shows it). Packed, posting
 * is a transfer, not a copy, whatever the number of keys.
 *
 * Layout per record, in `numbers`: kind (1 upsert, 0 delete), length of the limit name, length of the key;
 * an upsert goes on with rejected, lastRejectedAt, the window count and per window perMs, head and the
 * BUCKETS + 1 slots as the window stores them (SlidingWindow.writeTo). `names` holds the limit name and
 * the key of every record, in order.
 */
import type { KeyCounters, KeySnapshot } from './key-counters.js';
import { BUCKETS, SlidingWindow } from './sliding-window.js';

export interface CounterBatch {
  numbers: Float64Array;
  names: string;
}

export interface CounterChanges {
  upserts: KeySnapshot[];
  deletes: Array<{ limit: string; key: string }>;
}

const UPSERT = 1;
const DELETE = 0;
const WINDOW_SIZE = 2 + BUCKETS + 1;

/** Pack changed keys and removed keys; null when there is nothing to send. */
export function encodeCounterBatch(
  changed: Iterable<KeyCounters>,
  removed: ReadonlyArray<{ limit: string; key: string }>,
): CounterBatch | null {
  let size = removed.length * 3;
  let records = removed.length;
  for (const k of changed) {
    size += 6 + k.windows.length * WINDOW_SIZE;
    records++;
  }
  if (records === 0) return null;
  const numbers = new Float64Array(size);
  const names: string[] = [];
  let at = 0;
  for (const k of changed) {
    const limit = k.limit.name;
    numbers[at++] = UPSERT;
    numbers[at++] = limit.length;
    numbers[at++] = k.key.length;
    numbers[at++] = k.rejected;
    numbers[at++] = k.lastRejectedAt;
    numbers[at++] = k.windows.length;
    for (const w of k.windows) {
      numbers[at++] = w.perMs;
      at = w.writeTo(numbers, at);
    }
    names.push(limit, k.key);
  }
  for (const r of removed) {
    numbers[at++] = DELETE;
    numbers[at++] = r.limit.length;
    numbers[at++] = r.key.length;
    names.push(r.limit, r.key);
  }
  return { numbers, names: names.join('') };
}

/** Unpack a batch (in the worker) into the saved form of each key. */
export function decodeCounterBatch(batch: CounterBatch): CounterChanges {
  const { numbers, names } = batch;
  const upserts: KeySnapshot[] = [];
  const deletes: Array<{ limit: string; key: string }> = [];
  let at = 0;
  let pos = 0;
  const text = (length: number) => {
    const s = names.slice(pos, pos + length);
    pos += length;
    return s;
  };
  while (at < numbers.length) {
    const kind = numbers[at++]!;
    const limitLength = numbers[at++]!;
    const keyLength = numbers[at++]!;
    const limit = text(limitLength);
    const key = text(keyLength);
    if (kind === DELETE) {
      deletes.push({ limit, key });
      continue;
    }
    const rejected = numbers[at++]!;
    const lastRejectedAt = numbers[at++]!;
    const count = numbers[at++]!;
    const windows: KeySnapshot['windows'] = [];
    for (let i = 0; i < count; i++) {
      const perMs = numbers[at++]!;
      windows.push({ perMs, ...SlidingWindow.fromRaw(numbers, at) });
      at += WINDOW_SIZE - 1;
    }
    upserts.push({ limit, key, rejected, lastRejectedAt, windows });
  }
  return { upserts, deletes };
}
