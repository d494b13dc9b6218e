/**
 * The policy delegation wire format: `name=value` lines ended by an empty line, one `action=…` reply per
 * request. The reader is incremental (requests may span TCP segments or share one) and bounded: a line,
 * a request and the attribute count each have a limit, so a hostile or broken client cannot make the
 * daemon buffer without end.
 */
import { attributeAt, emptyRequest, type PolicyRequest } from './request.js';

export interface ReaderLimits {
  /** Longest accepted line, in characters (Postfix's own lines are well under 1 KB; certificates can be longer). */
  maxLineLength: number;
  /** Largest accepted request, in characters. */
  maxRequestLength: number;
  /** Most attribute lines in one request. */
  maxAttributes: number;
}

export const DEFAULT_READER_LIMITS: ReaderLimits = {
  maxLineLength: 8192,
  maxRequestLength: 65_536,
  maxAttributes: 256,
};

export type ProtocolErrorCode = 'LINE_TOO_LONG' | 'REQUEST_TOO_LARGE' | 'TOO_MANY_ATTRIBUTES' | 'BAD_LINE';

export interface ParsedRequest {
  request: PolicyRequest;
  /** Attributes this version does not know (ignored). */
  unknown: number;
}

export interface ProtocolViolation {
  code: ProtocolErrorCode;
  message: string;
}

export type ParseResult = { ok: true; value: ParsedRequest } | { ok: false; error: ProtocolViolation };

/** Parse one request block (its lines, without the terminating empty line). */
export function parseRequestBlock(block: string, limits: ReaderLimits = DEFAULT_READER_LIMITS): ParseResult {
  const request = emptyRequest();
  let unknown = 0;
  let count = 0;
  let start = 0;
  const end = block.length;
  while (start < end) {
    let nl = block.indexOf('\n', start);
    if (nl < 0) nl = end;
    let lineEnd = nl;
    if (lineEnd > start && block.charCodeAt(lineEnd - 1) === 13) lineEnd--; // tolerate CRLF
    if (lineEnd - start > limits.maxLineLength) {
      return violation('LINE_TOO_LONG', `line longer than ${limits.maxLineLength} characters`);
    }
    if (++count > limits.maxAttributes) {
      return violation('TOO_MANY_ATTRIBUTES', `more than ${limits.maxAttributes} attributes`);
    }
    const eq = block.indexOf('=', start);
    if (eq <= start || eq >= lineEnd) {
      return violation('BAD_LINE', `line ${count} is not name=value`);
    }
    const name = attributeAt(block, start, eq);
    if (name !== null) request[name] = block.slice(eq + 1, lineEnd);
    else unknown++;
    start = nl + 1;
  }
  return { ok: true, value: { request, unknown } };
}

function violation(code: ProtocolErrorCode, message: string): ParseResult {
  return { ok: false, error: { code, message } };
}

/**
 * Splits a character stream into request blocks. `push` returns the complete blocks found so far; after a
 * violation the reader is poisoned (the stream has lost its framing) and returns nothing more.
 */
export class PolicyReader {
  private buf = '';
  /** Where the search for the terminating empty line resumes. */
  private scanFrom = 0;
  private failed: ProtocolViolation | null = null;
  /** Where the request found by the last findTerminator() ends, blank line included. */
  private terminatorEnd = 0;

  constructor(private readonly limits: ReaderLimits = DEFAULT_READER_LIMITS) {}

  get error(): ProtocolViolation | null {
    return this.failed;
  }

  /** Characters buffered of a request not yet complete. */
  get pendingLength(): number {
    return this.buf.length;
  }

  /** Append data; complete blocks are appended to `out`. Returns false once the stream is unusable. */
  push(chunk: string, out: string[]): boolean {
    if (this.failed) return false;
    this.buf = this.buf.length === 0 ? chunk : this.buf + chunk;
    for (;;) {
      // Empty lines between requests carry nothing; skip them rather than treat them as empty requests.
      let lead = 0;
      while (
        lead < this.buf.length &&
        (this.buf.charCodeAt(lead) === 10 || this.buf.charCodeAt(lead) === 13)
      ) {
        lead++;
      }
      if (lead > 0) {
        this.buf = this.buf.slice(lead);
        this.scanFrom = Math.max(0, this.scanFrom - lead);
      }
      const end = this.findTerminator();
      if (end < 0) break;
      out.push(this.buf.slice(0, end));
      this.buf = this.buf.slice(this.terminatorEnd);
      this.scanFrom = 0;
    }
    return this.checkBounds();
  }

  /**
   * The stream ended (client half-closed). A request that lacks only its empty line is returned so it can
   * still be answered; null if nothing was pending.
   */
  finish(): string | null {
    if (this.failed) return null;
    const rest = this.buf.replace(/[\r\n]+$/, '');
    this.buf = '';
    return rest === '' ? null : rest;
  }

  /** Index of the blank line ending the first request (the block's end), or -1. Accepts \n\n and \r\n\r\n. */
  private findTerminator(): number {
    const b = this.buf;
    let i = b.indexOf('\n', this.scanFrom);
    while (i >= 0) {
      let j = i + 1;
      if (b.charCodeAt(j) === 13) j++;
      if (j < b.length && b.charCodeAt(j) === 10) {
        this.terminatorEnd = j + 1;
        return i > 0 && b.charCodeAt(i - 1) === 13 ? i - 1 : i;
      }
      if (j >= b.length) {
        // The terminator may be split across chunks: look again from this newline next time.
        this.scanFrom = i;
        return -1;
      }
      i = b.indexOf('\n', j);
    }
    this.scanFrom = b.length;
    return -1;
  }

  private checkBounds(): boolean {
    const b = this.buf;
    if (b.length > this.limits.maxRequestLength) {
      this.failed = {
        code: 'REQUEST_TOO_LARGE',
        message: `request longer than ${this.limits.maxRequestLength} characters`,
      };
    } else if (b.length - (b.lastIndexOf('\n') + 1) > this.limits.maxLineLength) {
      this.failed = {
        code: 'LINE_TOO_LONG',
        message: `line longer than ${this.limits.maxLineLength} characters`,
      };
    }
    if (this.failed) {
      this.buf = '';
      return false;
    }
    return true;
  }
}

const DUNNO_REPLY = 'action=DUNNO\n\n';

/** Postfix reads one reply line per request; a newline inside the text would desynchronise it. */
export function encodeReply(action: string): string {
  // Most replies: one constant string, nothing to build.
  if (action === 'DUNNO') return DUNNO_REPLY;
  return `action=${action.replace(/[\r\n]+/g, ' ')}\n\n`;
}
