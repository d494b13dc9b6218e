/**
 * Header work at intake, on the raw bytes (no MIME parsing, the body is never touched): read the
 * engine's control headers (X-Virtual-MTA, the job header) and remove them, read Message-ID and the
 * Postfix queue id from the topmost Received header, and prepend the engine's own Received header.
 */

export interface HeaderFacts {
  /** Value of X-Virtual-MTA, when the source may use it. */
  vmtaRequest: string | null;
  jobId: string | null;
  messageId: string | null;
  /** Queue id from a topmost `Received: … by host (Postfix) with … id QUEUEID` header. */
  postfixQueueId: string | null;
  /** The message with control headers removed. */
  body: Buffer;
}

export interface HeaderRules {
  /** Honour and remove X-Virtual-MTA. */
  processXVirtualMta: boolean;
  /** Header carrying the job id (honoured and removed); null = none. */
  jobidHeader: string | null;
}

/** Offset just past the blank line that ends the header block (or the message length if none). */
function headerEnd(raw: Buffer): number {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return crlf + 4;
  if (lf >= 0) return lf + 2;
  return raw.length;
}

interface RawHeader {
  name: string;
  start: number;
  end: number;
}

/** Header fields with their byte ranges (folded continuation lines belong to the field above). */
function splitHeaders(raw: Buffer, end: number): RawHeader[] {
  const out: RawHeader[] = [];
  let pos = 0;
  while (pos < end) {
    let nl = raw.indexOf(10, pos);
    if (nl < 0 || nl >= end) nl = end - 1;
    const first = raw[pos];
    if (first === 32 || first === 9) {
      const last = out.at(-1);
      if (last) last.end = nl + 1;
    } else if (first !== 13 && first !== 10) {
      const colon = raw.indexOf(58, pos);
      const name = colon > pos && colon < nl ? raw.toString('latin1', pos, colon).trim().toLowerCase() : '';
      out.push({ name, start: pos, end: nl + 1 });
    }
    pos = nl + 1;
  }
  return out;
}

function value(raw: Buffer, h: RawHeader): string {
  const text = raw.toString('utf8', h.start, h.end);
  return text
    .slice(text.indexOf(':') + 1)
    .replace(/\r?\n[ \t]+/g, ' ')
    .trim();
}

const POSTFIX_ID = /\(Postfix\)[\s\S]*?\bid\s+([0-9A-Za-z]+)\s*[;\s]/;

export function processHeaders(raw: Buffer, rules: HeaderRules): HeaderFacts {
  const end = headerEnd(raw);
  const headers = splitHeaders(raw, end);
  const jobName = rules.jobidHeader?.toLowerCase() ?? null;
  let vmtaRequest: string | null = null;
  let jobId: string | null = null;
  let messageId: string | null = null;
  let postfixQueueId: string | null = null;
  const drop: RawHeader[] = [];
  let seenReceived = false;
  for (const h of headers) {
    if (h.name === 'received' && !seenReceived) {
      seenReceived = true;
      postfixQueueId = POSTFIX_ID.exec(value(raw, h) + ' ')?.[1] ?? null;
    } else if (h.name === 'message-id' && messageId === null) {
      messageId = value(raw, h).slice(0, 250) || null;
    } else if (h.name === 'x-virtual-mta' && rules.processXVirtualMta) {
      vmtaRequest ??= value(raw, h).toLowerCase() || null;
      drop.push(h);
    } else if (jobName !== null && h.name === jobName) {
      jobId ??= value(raw, h).slice(0, 200) || null;
      drop.push(h);
    }
  }
  let body = raw;
  if (drop.length > 0) {
    const parts: Buffer[] = [];
    let pos = 0;
    for (const h of drop) {
      parts.push(raw.subarray(pos, h.start));
      pos = h.end;
    }
    parts.push(raw.subarray(pos));
    body = Buffer.concat(parts);
  }
  return { vmtaRequest, jobId, messageId, postfixQueueId, body };
}

let dateSecond = -1;
let dateText = '';

/** RFC 5322 date-time, e.g. `Thu, 05 Mar 2026 06:26:05 +0000` (formatted once per second: intake hot path). */
export function rfc5322Date(d: Date): string {
  const second = Math.floor(d.getTime() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = d.toUTCString().replace(/GMT$/, '+0000');
  }
  return dateText;
}

/** The engine's trace header (RFC 5321 §4.4), CRLF-terminated. */
export function receivedHeader(opts: {
  helo: string;
  ip: string;
  hostName: string;
  protocol: 'LMTP' | 'ESMTP';
  id: string;
  rcpt: string | null;
  at: Date;
}): string {
  const helo = opts.helo.replace(/[^\x21-\x7e]/g, '').slice(0, 100) || 'unknown';
  const forClause = opts.rcpt ? `\r\n\tfor <${opts.rcpt.replace(/[<>\s]/g, '')}>` : '';
  return (
    `Received: from ${helo} ([${opts.ip}])\r\n\tby ${opts.hostName} (Freight) with ${opts.protocol} id ${opts.id}` +
    `${forClause}; ${rfc5322Date(opts.at)}\r\n`
  );
}
