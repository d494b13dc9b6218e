/**
 * What a sink MX records: arrivals, connections and scripted refusals, plus the streaming scan that
 * pulls the header block out of DATA without keeping the body (sinks must take thousands of
 * messages a second).
 */

export interface Arrival {
  /** ms since epoch when the end of DATA was received. */
  time: number;
  /** Sink name (defaults to its host). */
  sink: string;
  connectionId: string;
  sourceIp: string;
  /** Name the client gave in EHLO/HELO ('' if none). */
  ehlo: string;
  /** Envelope sender, '' for the null sender. */
  mailFrom: string;
  rcptTo: string[];
  /** Lowercased header name → unfolded values, every occurrence in order. */
  headers: Record<string, string[]>;
  /** Header block exactly as received, up to and including the last header line's CRLF. */
  rawHeaders: string;
  /** Whole message in bytes (after dot-unstuffing). */
  size: number;
  /** Bytes after the blank line that ends the headers. */
  bodySize: number;
  tls: boolean;
  /** Whole message, only when the sink was started with keepRaw. */
  raw?: Buffer;
}

export interface ConnectionRecord {
  id: string;
  sourceIp: string;
  sourcePort: number;
  /** Last EHLO/HELO name seen on the connection ('' until one arrives). */
  ehlo: string;
  openedAt: number;
  closedAt?: number;
  /** Messages accepted on this connection. */
  messages: number;
  /** STARTTLS completed. */
  tls: boolean;
}

export type RefusalStage = 'connect' | 'mail' | 'rcpt' | 'data';

/** A non-2xx reply the script made the sink give, or a scripted drop. */
export interface Refusal {
  time: number;
  connectionId: string;
  sourceIp: string;
  stage: RefusalStage;
  /** 0 for a dropped connection (no reply at all). */
  code: number;
  message: string;
  /** MAIL FROM / RCPT TO address the reply was about (stage mail/rcpt). */
  address?: string;
}

const MAX_HEADER_BYTES = 1024 * 1024;

/** Feeds on DATA chunks; keeps only the header block (and the whole message if asked). */
export class MessageScanner {
  size = 0;
  bodySize = 0;
  private head: Buffer = Buffer.alloc(0);
  private headerEnd = -1;
  private readonly rawChunks: Buffer[] | undefined;

  constructor(keepRaw: boolean) {
    this.rawChunks = keepRaw ? [] : undefined;
  }

  push(chunk: Buffer): void {
    this.size += chunk.length;
    this.rawChunks?.push(chunk);
    if (this.headerEnd >= 0) {
      this.bodySize += chunk.length;
      return;
    }
    const from = Math.max(0, this.head.length - 3);
    this.head = Buffer.concat([this.head, chunk]);
    const crlf = this.head.indexOf('\r\n\r\n', from);
    const lf = this.head.indexOf('\n\n', from);
    // A header block larger than any real one: stop looking, count the rest as body.
    if (crlf < 0 && lf < 0 && this.head.length <= MAX_HEADER_BYTES) return;
    // `end` keeps the last header line's terminator; the blank line after it is neither header nor body.
    let end = this.head.length;
    let bodyStart = end;
    if (crlf >= 0 && (lf < 0 || crlf < lf)) {
      end = crlf + 2;
      bodyStart = crlf + 4;
    } else if (lf >= 0) {
      end = lf + 1;
      bodyStart = lf + 2;
    }
    this.headerEnd = end;
    this.bodySize = this.head.length - bodyStart;
    this.head = Buffer.from(this.head.subarray(0, end));
  }

  get rawHeaders(): string {
    return this.head.toString('utf8');
  }

  get raw(): Buffer | undefined {
    return this.rawChunks ? Buffer.concat(this.rawChunks) : undefined;
  }
}

/** Lowercased name → unfolded values; malformed lines are skipped, not fatal. */
export function parseHeaders(raw: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let current: { name: string; value: string } | undefined;
  const flush = () => {
    if (!current) return;
    const list = out[current.name] ?? [];
    list.push(current.value.trim());
    out[current.name] = list;
    current = undefined;
  };
  for (const line of raw.split(/\r?\n/)) {
    if (line === '') continue;
    if ((line.startsWith(' ') || line.startsWith('\t')) && current) {
      current.value += ` ${line.trim()}`;
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    // '__proto__' would replace the record's prototype instead of adding a header.
    if (colon <= 0 || name === '__proto__') continue;
    current = { name, value: line.slice(colon + 1) };
  }
  flush();
  return out;
}

/** Most timestamps (sorted ascending) inside any half-open window [t, t + windowMs). */
export function peakInWindow(sortedTimes: readonly number[], windowMs: number): number {
  let best = 0;
  let start = 0;
  for (let end = 0; end < sortedTimes.length; end++) {
    while ((sortedTimes[end] ?? 0) - (sortedTimes[start] ?? 0) >= windowMs) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}
