/**
 * A sliding-window counter in constant memory: the window is split into BUCKETS sub-intervals kept in a
 * ring, and the oldest bucket, which the window only partly covers, is weighted by the part still inside
 * it. The estimate is exact when events are spread evenly within a bucket and never off by more than one
 * bucket's events (1/BUCKETS of the window), unlike a fixed window that admits 2× the limit at its edge.
 */

export const BUCKETS = 30;

export class SlidingWindow {
  readonly perMs: number;
  readonly bucketMs: number;
  /** BUCKETS + 1 slots: the current bucket and the BUCKETS before it (the oldest partly outside). */
  private readonly slots: Float64Array;
  /** Absolute number (floor(time / bucketMs)) of the newest bucket. */
  private head: number;
  private total = 0;

  constructor(perMs: number, now: number) {
    this.perMs = perMs;
    this.bucketMs = Math.max(1, perMs / BUCKETS);
    this.slots = new Float64Array(BUCKETS + 1);
    this.head = Math.floor(now / this.bucketMs);
  }

  /** Estimated sum of amounts added within (now - perMs, now]. */
  count(now: number): number {
    this.advance(now);
    const elapsed = (now - this.head * this.bucketMs) / this.bucketMs;
    const oldest = this.slots[(this.head + 1) % (BUCKETS + 1)]!;
    return this.total - oldest * elapsed;
  }

  add(amount: number, now: number): void {
    this.advance(now);
    this.slots[this.head % (BUCKETS + 1)]! += amount;
    this.total += amount;
  }

  /**
   * Take back an amount added at `at` (a transaction that ended without mail). If that bucket has already
   * left the window there is nothing to take back.
   */
  remove(amount: number, at: number, now: number): void {
    this.advance(now);
    const bucket = Math.floor(at / this.bucketMs);
    if (bucket > this.head || bucket < this.head - BUCKETS) return;
    const i = bucket % (BUCKETS + 1);
    const taken = Math.min(amount, this.slots[i]!);
    this.slots[i]! -= taken;
    this.total -= taken;
  }

  /** True when nothing remains in the window (the key can be forgotten). */
  isEmpty(now: number): boolean {
    this.advance(now);
    return this.total <= 0;
  }

  /** Serializable state: head bucket and slot amounts, oldest first. */
  snapshot(): { head: number; amounts: number[] } {
    const amounts: number[] = [];
    for (let b = this.head - BUCKETS; b <= this.head; b++) amounts.push(this.slots[b % (BUCKETS + 1)]!);
    return { head: this.head, amounts };
  }

  /**
   * The state written into `out` at `at`: head, then the BUCKETS + 1 slots as stored (bucket b in slot
   * b % (BUCKETS + 1)), copied in one piece; `fromRaw` turns them back into a snapshot. Returns the end.
   */
  writeTo(out: Float64Array, at: number): number {
    out[at] = this.head;
    out.set(this.slots, at + 1);
    return at + BUCKETS + 2;
  }

  /** The snapshot form (amounts oldest first) of what `writeTo` wrote at `at`. */
  static fromRaw(raw: Float64Array, at: number): { head: number; amounts: number[] } {
    const head = raw[at]!;
    const amounts: number[] = [];
    for (let b = head - BUCKETS; b <= head; b++) amounts.push(raw[at + 1 + (b % (BUCKETS + 1))]!);
    return { head, amounts };
  }

  /** Add a snapshot taken with the same window size (counts from before a restart) into this window. */
  merge(snap: { head: number; amounts: number[] }, now: number): void {
    this.advance(now);
    snap.amounts.forEach((amount, k) => {
      const bucket = snap.head - BUCKETS + k;
      if (amount <= 0 || bucket > this.head || bucket < this.head - BUCKETS) return;
      this.slots[bucket % (BUCKETS + 1)]! += amount;
      this.total += amount;
    });
  }

  private advance(now: number): void {
    const bucket = Math.floor(now / this.bucketMs);
    if (bucket <= this.head) return;
    if (bucket - this.head > BUCKETS) {
      this.slots.fill(0);
      this.total = 0;
    } else {
      for (let b = this.head + 1; b <= bucket; b++) {
        const i = b % (BUCKETS + 1);
        this.total -= this.slots[i]!;
        this.slots[i] = 0;
      }
    }
    this.head = bucket;
    // Repeated float add/subtract can leave dust below zero; amounts are integers.
    if (this.total < 1e-9) this.total = Math.max(0, Math.round(this.total));
  }
}
