/**
 * What a Postfix log line says, after its prefix: a recipient delivery status, the smtpd client of a new
 * queue file, a reject, a Message-ID, qmgr's envelope line, an expiry, a removal, a bounce notice, a
 * postsuper action. The parser recognises lines by their text (any delivery agent, any syslog_name) with
 * anchored string checks and fills one reused object; strings are sliced only for the fields a row needs.
 */

export type LineKind =
  | 'delivery' // QID: to=<a>, …, status=sent|deferred|bounced|expired|force-expired (reply)
  | 'client' // smtpd QID: client=host[ip]
  | 'pickup' // pickup QID: uid=N from=<a> [orig_id=QID]
  | 'reject' // smtpd/cleanup NOQUEUE|QID: reject: … ; from=<a> to=<b> …
  | 'message-id' // cleanup QID: message-id=<id>
  | 'queued' // qmgr QID: from=<a>, size=N, nrcpt=M (queue active)
  | 'expired' // qmgr QID: from=<a>, status=expired|force-expired, returned to sender
  | 'removed' // qmgr/postsuper QID: removed
  | 'notification' // bounce QID: sender non-delivery notification: NEWQID
  | 'hold' // postsuper QID: placed on hold
  | 'release' // postsuper QID: released from hold
  | 'requeue' // postsuper QID: requeued
  | 'force-expire' // postsuper QID: expired
  | 'other' // a Postfix line that carries no accounting (connect, warning, statistics, …)
  | 'foreign' // another program's line in a shared syslog file
  | 'unknown'; // no known shape: counted and sampled

export interface ParsedLine {
  kind: LineKind;
  qid: string;
  /** Delivery: recipient; reject: `to=`. */
  to: string;
  origTo: string | null;
  relay: string | null;
  delay: number;
  dsn: string | null;
  /** sent | deferred | bounced | expired | force-expired */
  status: string;
  /** Delivery/reject reply text; notification: the new queue id; pickup: orig_id. */
  text: string;
  from: string | null;
  size: number;
  nrcpt: number;
  /** client= (smtpd) or the client of a reject. */
  client: string | null;
}

export function newParsedLine(): ParsedLine {
  return {
    kind: 'unknown',
    qid: '',
    to: '',
    origTo: null,
    relay: null,
    delay: 0,
    dsn: null,
    status: '',
    text: '',
    from: null,
    size: 0,
    nrcpt: 0,
    client: null,
  };
}

// Character classes for queue ids: 1 = digit or upper-case hex, 2 = other long-id character; vowels never
// occur in long ids, which keeps words like `warning:` or `statistics:` from looking like one.
const QID_CLASS = new Uint8Array(128);
for (let c = 48; c <= 57; c++) QID_CLASS[c] = 1;
for (let c = 65; c <= 90; c++) QID_CLASS[c] = c <= 70 ? 1 : 2;
for (let c = 97; c <= 122; c++) QID_CLASS[c] = 2;
// 3 = vowel that is not a hex digit; A and E (hex) are marked 4: hex for short ids, a vowel for long ones.
for (const v of 'IOUaeiou') QID_CLASS[v.charCodeAt(0)] = 3;
QID_CLASS[65] = 4;
QID_CLASS[69] = 4;

/**
 * Length of the queue id at `p` followed by `: `, or 0. Short ids are 6+ upper-case hex digits, long ids
 * (enable_long_queue_ids) 10+ characters of [0-9A-Za-z] without vowels; `NOQUEUE` is accepted as an id.
 */
function qidLength(line: string, p: number): number {
  let q = p;
  let hex = true;
  let vowel = false;
  for (;;) {
    const c = line.charCodeAt(q);
    const k = c < 128 ? QID_CLASS[c]! : 0;
    if (k === 0) break;
    if (k === 2 || k === 3) hex = false;
    if (k >= 3) vowel = true;
    q++;
  }
  const n = q - p;
  if (line.charCodeAt(q) !== 58 || line.charCodeAt(q + 1) !== 32 || n > 24) return 0;
  if ((hex && n >= 6) || (!vowel && n >= 10)) return n;
  return n === 7 && line.startsWith('NOQUEUE', p) ? 7 : 0;
}

/** Value of `<…>` at p (p at `<`): returns the end index (at `>`) or -1. */
function angleEnd(line: string, p: number): number {
  // `>` followed by `,` / space / end closes it; a quoted local part may itself contain `>`.
  let q = p;
  for (;;) {
    q = line.indexOf('>', q + 1);
    if (q < 0) return -1;
    const next = line.charCodeAt(q + 1);
    if (Number.isNaN(next) || next === 44 || next === 32) return q;
  }
}

function parseDelivery(line: string, p: number, out: ParsedLine): boolean {
  out.origTo = null;
  out.relay = null;
  out.dsn = null;
  out.delay = 0;
  out.status = '';
  out.text = '';
  const len = line.length;
  while (p < len) {
    const eq = line.indexOf('=', p);
    if (eq < 0) return false;
    let end: number;
    let vs = eq + 1;
    let ve: number;
    if (line.charCodeAt(vs) === 60 /* < */) {
      const close = angleEnd(line, vs);
      if (close < 0) return false;
      vs++;
      ve = close;
      end = close + 1;
    } else if (eq - p === 6 && line.startsWith('status', p)) {
      // status=WORD (reply text that may contain anything, up to the last `)`)
      let w = line.indexOf(' ', vs);
      if (w < 0) w = len;
      const comma = line.indexOf(',', vs);
      if (comma >= 0 && comma < w) w = comma;
      out.status = line.slice(vs, w);
      const open = line.indexOf('(', w);
      if (open >= 0) out.text = line.slice(open + 1, line.charCodeAt(len - 1) === 41 ? len - 1 : len);
      return true;
    } else {
      ve = line.indexOf(', ', vs);
      if (ve < 0) ve = len;
      end = ve;
    }
    const klen = eq - p;
    if (klen === 2 && line.startsWith('to', p)) out.to = line.slice(vs, ve);
    else if (klen === 7 && line.startsWith('orig_to', p)) out.origTo = line.slice(vs, ve);
    else if (klen === 5 && line.startsWith('relay', p)) out.relay = line.slice(vs, ve);
    else if (klen === 5 && line.startsWith('delay', p)) out.delay = Number(line.slice(vs, ve)) || 0;
    else if (klen === 3 && line.startsWith('dsn', p)) out.dsn = line.slice(vs, ve);
    p = end;
    if (line.charCodeAt(p) === 44) p++;
    while (line.charCodeAt(p) === 32) p++;
  }
  return false;
}

/** `reject: RCPT from host[ip]: 554 5.7.1 <x>: text; from=<a> to=<b> proto=ESMTP helo=<h>` (and cleanup's variant). */
function parseReject(line: string, p: number, out: ParsedLine): boolean {
  out.from = null;
  out.to = '';
  out.client = null;
  const env = line.lastIndexOf('; from=<');
  if (env < p) return false;
  const fromEnd = angleEnd(line, env + 7);
  if (fromEnd < 0) return false;
  out.from = line.slice(env + 8, fromEnd);
  const toAt = line.indexOf(' to=<', fromEnd);
  if (toAt >= 0) {
    const toEnd = angleEnd(line, toAt + 4);
    if (toEnd > 0) out.to = line.slice(toAt + 5, toEnd);
  }
  const fromWord = line.indexOf(' from ', p);
  if (fromWord >= 0 && fromWord < env) {
    const cs = fromWord + 6;
    const ce = line.indexOf(': ', cs);
    const semi = line.indexOf(';', cs);
    if (ce >= 0 && ce < env) {
      out.client = line.slice(cs, ce);
      out.text = line.slice(ce + 2, env);
      return true;
    }
    // cleanup: `reject: header Subject: … from host[ip]; from=<> to=<> proto=… helo=<…>: 5.7.1 text`
    out.client = line.slice(cs, semi >= 0 ? semi : env);
  }
  const tail = line.indexOf('>: ', toAt >= 0 ? toAt : fromEnd);
  out.text = tail >= 0 ? line.slice(tail + 3) : line.slice(p, env);
  return true;
}

function parseQueued(line: string, p: number, out: ParsedLine): boolean {
  // from=<a>, size=N, nrcpt=M (queue active)  |  from=<a>, status=expired, returned to sender
  const fromEnd = angleEnd(line, p + 5);
  if (fromEnd < 0) return false;
  out.from = line.slice(p + 6, fromEnd);
  const q = fromEnd + 3;
  if (line.startsWith('size=', q)) {
    const comma = line.indexOf(',', q);
    out.size = Number(line.slice(q + 5, comma)) || 0;
    const n = line.indexOf('nrcpt=', comma);
    out.nrcpt = n >= 0 ? Number.parseInt(line.slice(n + 6, n + 16), 10) || 0 : 0;
    out.kind = 'queued';
    return true;
  }
  if (line.startsWith('status=', q)) {
    const comma = line.indexOf(',', q);
    out.status = line.slice(q + 7, comma >= 0 ? comma : line.length);
    out.kind = 'expired';
    return true;
  }
  return false;
}

/** Classify the text of a line (from prefix.msgStart). `foreign` is decided by the caller. */
export function parseMessage(line: string, p: number, out: ParsedLine): LineKind {
  const n = qidLength(line, p);
  if (n === 0) {
    out.kind = 'other';
    return out.kind;
  }
  out.qid = line.slice(p, p + n);
  const m = p + n + 2;
  out.kind = 'unknown';
  const c = line.charCodeAt(m);
  if (c === 116 /* t */ && line.startsWith('to=', m)) {
    if (parseDelivery(line, m, out)) out.kind = 'delivery';
  } else if (c === 99 /* c */ && line.startsWith('client=', m)) {
    const comma = line.indexOf(',', m);
    out.client = line.slice(m + 7, comma >= 0 ? comma : line.length);
    out.kind = 'client';
  } else if (c === 109 /* m */ && line.startsWith('message-id=', m)) {
    const v = m + 11;
    out.text = line.charCodeAt(v) === 60 ? line.slice(v + 1, line.lastIndexOf('>')) : line.slice(v);
    out.kind = 'message-id';
  } else if (c === 102 /* f */ && line.startsWith('from=<', m)) {
    parseQueued(line, m, out);
  } else if (c === 114 /* r */) {
    if (line.startsWith('removed', m)) out.kind = 'removed';
    else if (line.startsWith('reject: ', m) && parseReject(line, m + 8, out)) out.kind = 'reject';
    else if (line.startsWith('released from hold', m)) out.kind = 'release';
    else if (line.startsWith('requeued', m)) out.kind = 'requeue';
  } else if (c === 109 /* m */ && line.startsWith('milter-reject: ', m)) {
    if (parseReject(line, m + 15, out)) out.kind = 'reject';
  } else if (c === 115 /* s */ || c === 112 /* p */) {
    // bounce: `sender non-delivery notification: NEWQID` (also delay/success/postmaster notices)
    const notice = line.indexOf(' notification: ', m);
    if (notice > 0) {
      out.text = line.slice(notice + 15);
      out.kind = 'notification';
    } else if (line.startsWith('placed on hold', m)) {
      out.kind = 'hold';
    }
  } else if (c === 117 /* u */ && line.startsWith('uid=', m)) {
    const f = line.indexOf(' from=<', m);
    const fe = f >= 0 ? angleEnd(line, f + 6) : -1;
    out.from = fe > 0 ? line.slice(f + 7, fe) : null;
    const o = line.indexOf(' orig_id=', m);
    out.text = o >= 0 ? line.slice(o + 9) : '';
    out.kind = 'pickup';
  } else if (c === 101 /* e */ && line.startsWith('expired', m)) {
    out.kind = 'force-expire';
  }
  if (out.kind !== 'unknown') return out.kind;
  if (
    line.startsWith('warning:', m) ||
    line.startsWith('info:', m) ||
    line.startsWith('hold:', m) ||
    line.startsWith('discard:', m) ||
    line.startsWith('filter:', m) ||
    line.startsWith('redirect:', m) ||
    line.startsWith('replace:', m) ||
    line.startsWith('prepend:', m) ||
    line.startsWith('enabling PIX', m) ||
    line.startsWith('host ', m) ||
    line.startsWith('lost connection', m) ||
    line.startsWith('conversation with', m) ||
    line.startsWith('skipped', m)
  ) {
    out.kind = 'other';
  }
  if (out.kind === 'unknown' && n === 7 && line.startsWith('NOQUEUE', p)) out.kind = 'other';
  return out.kind;
}
