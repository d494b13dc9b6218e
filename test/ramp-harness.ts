/**
 * Shared pieces of the ramp tests: a socketmap client (the same protocol Postfix speaks), parallel bulk
 * submission to a real Postfix, and per-recipient arrival counts at sinks.
 */
import net from 'node:net';
import type { Sink } from '../harness/sink.js';
import { submit } from '../harness/smtp-client.js';
import {
  encodeNetstring,
  NetstringDecoder,
  parseReply,
  type SocketmapReply,
} from '../sidecar/ramp/socketmap.js';

/** One connection, sequential lookups, like Postfix's dict_sockmap client. */
export class SocketmapClient {
  private readonly decoder = new NetstringDecoder();
  private waiting: Array<(r: SocketmapReply | null) => void> = [];
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      for (;;) {
        const r = this.decoder.next();
        if (r.kind !== 'netstring') break;
        this.waiting.shift()?.(parseReply(r.payload));
      }
    });
    const end = () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w(null);
    };
    socket.on('close', end);
    socket.on('error', end);
  }

  static connect(host: string, port: number): Promise<SocketmapClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port }, () => resolve(new SocketmapClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Send raw bytes and wait for the next reply (null if the server closed the connection first). */
  raw(bytes: Buffer | string): Promise<SocketmapReply | null> {
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.write(bytes);
    });
  }

  lookup(key: string, name = 'transport'): Promise<SocketmapReply | null> {
    return this.raw(encodeNetstring(`${name} ${key}`));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Submit `rcpts` to Postfix, `perMessage` recipients per message, over `parallel` SMTP sessions at once. */
export async function submitBulk(
  host: string,
  port: number,
  rcpts: string[],
  opts: { perMessage?: number; parallel?: number; from?: string } = {},
): Promise<void> {
  const per = opts.perMessage ?? 100;
  const batches: string[][] = [];
  for (let i = 0; i < rcpts.length; i += per) batches.push(rcpts.slice(i, i + per));
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const batch = batches[next++]!;
      const r = await submit({
        host,
        port,
        from: opts.from ?? 'sender@apps.test',
        to: batch,
        subject: 'ramp',
      });
      if (r.rejected.length > 0) throw new Error(`Postfix rejected ${r.rejected.join(', ')}`);
    }
  };
  await Promise.all(Array.from({ length: opts.parallel ?? 5 }, worker));
}

/** Recipient → times it arrived at the sink. */
export function arrivalCounts(sink: Sink): Map<string, number> {
  const counts = new Map<string, number>();
  for (const a of sink.arrivals)
    for (const r of a.rcptTo) counts.set(r.toLowerCase(), (counts.get(r.toLowerCase()) ?? 0) + 1);
  return counts;
}

export const recipients = (prefix: string, n: number, suffix = ''): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(5, '0')}${suffix}@example.com`);
