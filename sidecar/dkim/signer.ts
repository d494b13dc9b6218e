/**
 * DKIM signing (relaxed/relaxed, RSA or Ed25519) with mailauth's canonicalizers and header formatter.
 *
 * Why not mailauth's `dkimSign()`: it re-reads and re-hashes the whole body on every call (a precomputed
 * `bodyHash` option is overwritten once the body is streamed), and its header selection cannot oversign
 * (h= only lists headers present). So the body hash (bh=) is computed once per message with mailauth's
 * relaxed body hasher and cached by message id; each attempt then reads only the header block, which is
 * canonicalized and formatted with mailauth's own helpers and signed with node:crypto exactly as mailauth
 * does (RSA: sign the data; Ed25519: sign its SHA-256, RFC 8463).
 */
import { createHash, sign as cryptoSign } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import { errorMessage, FreightError } from '../common/errors.js';
import type { DomainKeyRing, LoadedDomainKey } from './keys.js';

interface ParsedHeader {
  key: string | null;
  casedKey: string | undefined;
  line: Buffer;
}
interface BodyHasher {
  update(chunk: Buffer): void;
  digest(encoding: 'base64'): string;
}
interface MailauthTools {
  parseHeaders(buf: Buffer): { parsed: ParsedHeader[] };
  getSigningHeaderLines(
    parsed: ParsedHeader[],
    fieldNames: string,
    verify: boolean,
  ): { headers: ParsedHeader[] };
  formatRelaxedLine(line: Buffer | string, suffix?: string): Buffer;
  formatSignatureHeaderLine(type: 'DKIM', values: Record<string, unknown>, folded: boolean): string;
  defaultDKIMFieldNames: string;
}
const require = createRequire(import.meta.url);
const tools = require('mailauth/lib/tools.js') as MailauthTools;
const { dkimBody } = require('mailauth/lib/dkim/body/index.js') as {
  dkimBody: (canon: string, hashAlgo: string, maxBodyLength: number | false) => BodyHasher;
};

/** mailauth's default signed headers (From, Subject, Date, Message-ID, To, Cc, MIME and List-* …). */
export const DEFAULT_DKIM_HEADERS: readonly string[] = tools.defaultDKIMFieldNames.split(':');

/** A spooled message the signer can read; `open()` may be called once per signing. */
export interface DkimMessage {
  /** Engine message id: the body-hash cache key. */
  id: string;
  open(): Readable | NodeJS.ReadableStream;
}

export interface DkimSignRequest {
  /**
   * `dkim-identity`: `@example.com` or `user@example.com` (sets d= and i=) or a bare domain (d=);
   * null = sign as the From header's domain.
   */
  identity?: string | null;
  /** `dkim-headers`: header names to sign; null = DEFAULT_DKIM_HEADERS. */
  headers?: readonly string[] | null;
}

export interface DkimSignature {
  /** The complete `DKIM-Signature: …` field, folded, ending in CRLF: prepend it to the message. */
  header: string;
  domain: string;
  selector: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  bodyHash: string;
}

export interface DkimSignerOptions {
  /** Headers signed one extra time so none can be added after signing (default: From). */
  oversign?: readonly string[];
  /** Body hashes remembered (least recently used dropped first); default 10 000. */
  cacheSize?: number;
  now?: () => number;
}

const HEADER_END_CRLF = Buffer.from('\r\n\r\n');
const HEADER_END_LF = Buffer.from('\n\n');

/** Domain of the (first) address in a From field value; null when there is none. */
export function fromDomain(value: string): string | null {
  const angle = /<([^<>]*)>\s*$/.exec(value) ?? /<([^<>]*)>/.exec(value);
  const addr = (angle ? angle[1]! : value).trim();
  const at = addr.lastIndexOf('@');
  if (at < 0) return null;
  const domain = addr
    .slice(at + 1)
    .replace(/[>\s,;].*$/, '')
    .toLowerCase();
  return /^[a-z0-9.-]+$/.test(domain) && domain.includes('.') ? domain : null;
}

/** Where the header block ends in `buf` (index just past the blank line), or -1. */
function headerEnd(buf: Buffer): number {
  const crlf = buf.indexOf(HEADER_END_CRLF);
  const lf = buf.indexOf(HEADER_END_LF);
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return crlf + 4;
  if (lf >= 0) return lf + 2;
  return -1;
}

/** Turns bare LF into CRLF across chunk boundaries (what SMTP will transmit, and what is hashed). */
class CrlfNormalizer {
  private lastCr = false;
  push(chunk: Buffer): Buffer {
    let out: number[] | null = null;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      const prevCr = i === 0 ? this.lastCr : chunk[i - 1] === 0x0d;
      if (c === 0x0a && !prevCr) {
        out ??= [...chunk.subarray(0, i)];
        out.push(0x0d, 0x0a);
      } else if (out) out.push(c);
    }
    if (chunk.length > 0) this.lastCr = chunk[chunk.length - 1] === 0x0d;
    return out ? Buffer.from(out) : chunk;
  }
}

/** Reads the header block; with `hasher`, also hashes the body, else stops reading at the blank line. */
async function readMessage(
  stream: Readable | NodeJS.ReadableStream,
  hasher: BodyHasher | null,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  let header: Buffer | null = null;
  const crlf = new CrlfNormalizer();
  const readable = stream as Readable;
  try {
    for await (const raw of readable) {
      const chunk = typeof raw === 'string' ? Buffer.from(raw) : (raw as Buffer);
      if (header) {
        hasher?.update(crlf.push(chunk));
        continue;
      }
      parts.push(chunk);
      const buf = Buffer.concat(parts);
      const end = headerEnd(buf);
      if (end < 0) continue;
      header = buf.subarray(0, end);
      if (!hasher) break;
      const rest = buf.subarray(end);
      if (rest.length > 0) hasher.update(crlf.push(rest));
    }
  } finally {
    readable.destroy?.();
  }
  if (!header) {
    // A message without a body: everything read is header.
    header = Buffer.concat(parts);
  }
  return header;
}

export class DkimSigner {
  private readonly keys: DomainKeyRing;
  private readonly oversign: string[];
  private readonly cacheSize: number;
  private readonly now: () => number;
  private readonly bodyHashes = new Map<string, string>();

  constructor(keys: DomainKeyRing, opts: DkimSignerOptions = {}) {
    this.keys = keys;
    this.oversign = [...(opts.oversign ?? ['From'])];
    this.cacheSize = Math.max(1, opts.cacheSize ?? 10_000);
    this.now = opts.now ?? Date.now;
  }

  /** Body hashes cached (one per message). */
  get cached(): number {
    return this.bodyHashes.size;
  }

  /** The message left the spool: its body hash is no longer needed. */
  forget(id: string): void {
    this.bodyHashes.delete(id);
  }

  /**
   * Signs `msg` for one delivery attempt. Throws FreightError DKIM_NO_KEY when no `domain-key` covers the
   * signing domain, DKIM_NO_FROM when there is no From domain to sign as (and no identity), DKIM_FAILED
   * when reading the message or the signing itself fails. Never returns an unsigned result.
   */
  async sign(msg: DkimMessage, req: DkimSignRequest = {}): Promise<DkimSignature> {
    let bodyHash = this.bodyHashes.get(msg.id) ?? null;
    let headerBuf: Buffer;
    try {
      if (bodyHash) {
        headerBuf = await readMessage(msg.open(), null);
        // Refresh recency so an active message's hash is not the one evicted.
        this.bodyHashes.delete(msg.id);
        this.bodyHashes.set(msg.id, bodyHash);
      } else {
        const hasher = dkimBody('relaxed', 'sha256', false);
        headerBuf = await readMessage(msg.open(), hasher);
        bodyHash = hasher.digest('base64');
        this.remember(msg.id, bodyHash);
      }
    } catch (err) {
      throw new FreightError(
        'DKIM_FAILED',
        `cannot read message ${msg.id} for signing: ${errorMessage(err)}`,
        {
          id: msg.id,
        },
      );
    }
    const parsed = tools.parseHeaders(headerBuf).parsed;
    const { domain, identity } = this.signingDomain(parsed, req.identity ?? null, msg.id);
    const key = this.keys.find(domain);
    if (!key) {
      throw new FreightError('DKIM_NO_KEY', `no domain-key for ${domain} (message ${msg.id})`, {
        id: msg.id,
        domain,
      });
    }
    return this.signHeaders(parsed, bodyHash, key, identity, req.headers ?? DEFAULT_DKIM_HEADERS);
  }

  private remember(id: string, bodyHash: string): void {
    if (this.bodyHashes.size >= this.cacheSize) {
      const oldest = this.bodyHashes.keys().next().value;
      if (oldest !== undefined) this.bodyHashes.delete(oldest);
    }
    this.bodyHashes.set(id, bodyHash);
  }

  private signingDomain(
    parsed: ParsedHeader[],
    identity: string | null,
    id: string,
  ): { domain: string; identity: string | null } {
    if (identity) {
      const at = identity.lastIndexOf('@');
      const domain = (at >= 0 ? identity.slice(at + 1) : identity).toLowerCase();
      return { domain, identity: at >= 0 ? identity : null };
    }
    const from = parsed.find((h) => h.key === 'from');
    const value = from ? from.line.toString('binary').replace(/^[^:]*:/, '') : '';
    const domain = fromDomain(value.replace(/\r?\n/g, ''));
    if (!domain) {
      throw new FreightError('DKIM_NO_FROM', `message ${id} has no From domain to sign as`, { id });
    }
    return { domain, identity: null };
  }

  private signHeaders(
    parsed: ParsedHeader[],
    bodyHash: string,
    key: LoadedDomainKey,
    identity: string | null,
    headerNames: readonly string[],
  ): DkimSignature {
    // h= lists every instance of each configured header that is present (bottom-up, as verifiers pick them),
    // plus one more of each oversigned header: verifiers then hash "no such header" for it, so a second
    // From added in transit breaks the signature.
    const counts = new Map<string, number>();
    for (const h of parsed) if (h.key) counts.set(h.key, (counts.get(h.key) ?? 0) + 1);
    const names: string[] = [];
    const seen = new Set<string>();
    for (const name of headerNames) {
      const lower = name.trim().toLowerCase();
      if (!lower || seen.has(lower)) continue;
      seen.add(lower);
      const n = counts.get(lower) ?? 0;
      const extra = this.oversign.some((o) => o.toLowerCase() === lower) ? 1 : 0;
      for (let i = 0; i < n + extra; i++) names.push(name.trim());
    }
    for (const o of this.oversign) {
      if (seen.has(o.toLowerCase())) continue;
      seen.add(o.toLowerCase());
      for (let i = 0; i < (counts.get(o.toLowerCase()) ?? 0) + 1; i++) names.push(o);
    }
    const h = names.join(':');
    const signed = tools.getSigningHeaderLines(parsed, h, true).headers;
    const algorithm = key.type === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256';
    const opts: Record<string, unknown> = {
      a: algorithm,
      c: 'relaxed/relaxed',
      s: key.selector,
      d: key.domain,
      h,
      bh: bodyHash,
      t: Math.floor(this.now() / 1000),
    };
    if (identity) opts.i = identity;
    // Same placeholder trick as mailauth: a b= of typical length so the folding before b= matches the
    // final header; the b= value itself is removed before hashing (RFC 6376 §3.7).
    const placeholder = tools.formatSignatureHeaderLine('DKIM', { b: 'a'.repeat(73), ...opts }, true);
    const chunks = signed.map((line) => tools.formatRelaxedLine(line.line, '\r\n'));
    chunks.push(
      Buffer.from(
        tools
          .formatRelaxedLine(placeholder)
          .toString('binary')
          .replace(/([;:\s]+b=)[^;]+/, '$1'),
        'binary',
      ),
    );
    const data = Buffer.concat(chunks);
    let b: string;
    try {
      b =
        key.type === 'rsa'
          ? cryptoSign('sha256', data, key.key).toString('base64')
          : cryptoSign(null, createHash('sha256').update(data).digest(), key.key).toString('base64');
    } catch (err) {
      throw new FreightError('DKIM_FAILED', `signing as ${key.domain} failed: ${errorMessage(err)}`, {
        domain: key.domain,
        selector: key.selector,
      });
    }
    const header = `${tools.formatSignatureHeaderLine('DKIM', { ...opts, b }, true)}\r\n`;
    return { header, domain: key.domain, selector: key.selector, algorithm, bodyHash };
  }
}

/** The signing request for a queue's settings (`dkim-sign`, `dkim-identity`, `dkim-headers`); null = don't sign. */
export function dkimRequestFor(s: {
  dkimSign: boolean;
  dkimIdentity: string | null;
  dkimHeaders?: string[] | null;
}): DkimSignRequest | null {
  if (!s.dkimSign) return null;
  return { identity: s.dkimIdentity, headers: s.dkimHeaders ?? null };
}
