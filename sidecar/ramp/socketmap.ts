/**
 * Postfix's socketmap protocol (socketmap_table(5)): one netstring request `name key` per lookup, one
 * netstring reply `OK data` | `NOTFOUND ` | `TEMP reason` | `TIMEOUT reason` | `PERM reason`.
 * Netstrings are `<decimal length>:<bytes>,`. The decoder is incremental (TCP delivers any split) and
 * reports malformed framing instead of throwing, so a bad client gets an error reply, never a crash.
 */

/** Postfix refuses replies longer than this; requests are held to the same bound. */
export const MAX_NETSTRING = 100_000;

export type SocketmapReply =
  | { status: 'OK'; data: string }
  | { status: 'NOTFOUND' }
  | { status: 'TEMP' | 'TIMEOUT' | 'PERM'; reason: string };

export interface SocketmapRequest {
  name: string;
  key: string;
}

export type DecodeResult =
  | { kind: 'netstring'; payload: Buffer }
  | { kind: 'incomplete' }
  /** Framing is lost: the connection cannot be resynchronised and should be answered and closed. */
  | { kind: 'malformed'; reason: string };

export function encodeNetstring(payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([Buffer.from(`${body.length}:`, 'ascii'), body, Buffer.from(',', 'ascii')]);
}

/** Accumulates bytes from a socket and yields complete netstrings. */
export class NetstringDecoder {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxLength = MAX_NETSTRING) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** Bytes received but not yet consumed. */
  get pending(): number {
    return this.buf.length;
  }

  next(): DecodeResult {
    const colon = this.buf.indexOf(0x3a);
    const digits = colon === -1 ? this.buf.length : colon;
    for (let i = 0; i < digits; i++) {
      const c = this.buf[i]!;
      if (c < 0x30 || c > 0x39) return { kind: 'malformed', reason: 'length is not a decimal number' };
    }
    // No leading zeros (netstrings.txt) and a bound on the digits before we even see the colon.
    if (digits > String(this.maxLength).length) return { kind: 'malformed', reason: 'netstring too long' };
    if (colon === -1) return { kind: 'incomplete' };
    if (colon === 0) return { kind: 'malformed', reason: 'missing length' };
    if (colon > 1 && this.buf[0] === 0x30) return { kind: 'malformed', reason: 'length has a leading zero' };
    const length = Number(this.buf.subarray(0, colon).toString('ascii'));
    if (length > this.maxLength) return { kind: 'malformed', reason: 'netstring too long' };
    const end = colon + 1 + length;
    if (this.buf.length < end + 1) return { kind: 'incomplete' };
    if (this.buf[end] !== 0x2c) return { kind: 'malformed', reason: "netstring does not end with ','" };
    const payload = Buffer.from(this.buf.subarray(colon + 1, end));
    this.buf = this.buf.subarray(end + 1);
    return { kind: 'netstring', payload };
  }
}

/** `name key` → request; null if there is no space or the name is empty. The key may contain spaces. */
export function parseRequest(payload: Buffer): SocketmapRequest | null {
  const text = payload.toString('utf8');
  const space = text.indexOf(' ');
  if (space <= 0) return null;
  return { name: text.slice(0, space), key: text.slice(space + 1) };
}

export function formatReply(reply: SocketmapReply): Buffer {
  // Reply text is one line by construction; CR/LF would only confuse Postfix's logging.
  const clean = (s: string) => s.replace(/[\r\n]+/g, ' ');
  switch (reply.status) {
    case 'OK':
      return encodeNetstring(`OK ${clean(reply.data)}`);
    case 'NOTFOUND':
      return encodeNetstring('NOTFOUND ');
    default:
      return encodeNetstring(`${reply.status} ${clean(reply.reason)}`);
  }
}

/** Parse a reply: the client side, for anyone probing a running ramp server. */
export function parseReply(payload: Buffer): SocketmapReply | null {
  const text = payload.toString('utf8');
  const space = text.indexOf(' ');
  const status = space === -1 ? text : text.slice(0, space);
  const rest = space === -1 ? '' : text.slice(space + 1);
  if (status === 'OK') return { status, data: rest };
  if (status === 'NOTFOUND') return { status };
  if (status === 'TEMP' || status === 'TIMEOUT' || status === 'PERM') return { status, reason: rest };
  return null;
}
