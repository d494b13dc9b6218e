/**
 * Messages whose removal waits for a DSN: a message that owes a DSN stays in the spool until the DSN
 * is durable in the outbox, so a crash in between cannot lose the bounce notice.
 */
export class DsnHolds {
  /** Message id → outstanding DSN jobs. */
  private readonly pending = new Map<string, number>();
  private readonly removeAfter = new Set<string>();

  hold(id: string): void {
    this.pending.set(id, (this.pending.get(id) ?? 0) + 1);
  }

  /** If `id` waits for a DSN, remember to remove it afterwards; true when it does. */
  deferRemoval(id: string): boolean {
    if (!this.pending.has(id)) return false;
    this.removeAfter.add(id);
    return true;
  }

  /** One DSN job of `id` is done; true when it was the last and the message's removal waited for it. */
  release(id: string): boolean {
    const left = (this.pending.get(id) ?? 1) - 1;
    if (left > 0) {
      this.pending.set(id, left);
      return false;
    }
    this.pending.delete(id);
    return this.removeAfter.delete(id);
  }
}
