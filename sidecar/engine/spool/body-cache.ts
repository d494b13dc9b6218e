/**
 * Bodies of recently accepted messages, kept in memory up to a byte budget so the first delivery
 * attempt (usually within milliseconds of intake) sends from memory instead of reading the spool back.
 * Oldest first out; the spool stays the only durable copy, so eviction never loses anything.
 */
export class BodyCache {
  private readonly budget: number;
  private readonly bodies = new Map<string, Buffer>();
  private bytes = 0;

  constructor(budgetBytes: number) {
    this.budget = budgetBytes;
  }

  put(id: string, body: Buffer): void {
    if (body.length > this.budget / 4) return;
    this.bodies.set(id, body);
    this.bytes += body.length;
    for (const [old, buf] of this.bodies) {
      if (this.bytes <= this.budget) break;
      this.bodies.delete(old);
      this.bytes -= buf.length;
    }
  }

  get(id: string): Buffer | undefined {
    return this.bodies.get(id);
  }

  delete(id: string): void {
    const buf = this.bodies.get(id);
    if (!buf) return;
    this.bodies.delete(id);
    this.bytes -= buf.length;
  }

  get size(): number {
    return this.bytes;
  }
}
