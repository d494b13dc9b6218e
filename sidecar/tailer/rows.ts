/**
 * Accounting rows from Postfix log events (path=postfix): `d` sent, `t` deferred, `b` bounced
 * or expired, `rj` rejected at smtpd/cleanup. A hand-off to the engine is a `d` row with
 * queue='freight-engine' (dlvType the transport protocol, dsnDiag the `250 … queued as <engine-id>` reply);
 * it carries the Postfix queue id and Message-ID that the engine also writes, so `acct trail` joins them.
 */
import type { AcctRecord, BounceCategory } from '../acct/record.js';
import type { HostPort } from '../config/model.js';

/** The part of BounceClassifier the tailer uses. */
export interface ReplyClassifier {
  classify(reply: string): { category: BounceCategory; hard: boolean };
}

export const HANDOFF_QUEUE = 'freight-engine';

/** Facts about a queue file gathered from earlier lines. */
export interface QueueState {
  from: string | null;
  size: number;
  messageId: string | null;
  client: string | null;
  timeQueued: number | null;
  lastSeen: number;
  /** Recipients whose last attempt was deferred, with that attempt (an expiry bounces them). */
  pending: Record<string, PendingRcpt> | null;
}

export interface PendingRcpt {
  orcpt: string | null;
  dsn: string | null;
  diag: string | null;
  relay: string | null;
}

export interface DeliveryFacts {
  time: number;
  service: string;
  to: string;
  origTo: string | null;
  relay: string | null;
  delay: number;
  dsn: string | null;
  status: string;
  text: string;
}

/** A hard bounce to add to the suppression list once its row commits. */
export interface SuppressRequest {
  address: string;
  reason: string;
  /** The bounce row: the address is suppressed only if this row is new (not a re-read line). */
  row: AcctRecord;
}

const CACHE_MAX = 10_000;

export class RowBuilder {
  private readonly cache = new Map<string, { category: BounceCategory; hard: boolean }>();
  private engineSuffix: string | null;

  constructor(
    private readonly classifier: ReplyClassifier | null,
    engine: HostPort | null,
  ) {
    this.engineSuffix = engine ? `[${engine.host}]:${engine.port}` : null;
  }

  setEngine(engine: HostPort | null): void {
    this.engineSuffix = engine ? `[${engine.host}]:${engine.port}` : null;
  }

  /** Replies repeat (the same deferral for a whole domain), so classifications are cached. */
  classify(diag: string): { category: BounceCategory; hard: boolean } | null {
    if (!this.classifier) return null;
    let c = this.cache.get(diag);
    if (!c) {
      c = this.classifier.classify(diag);
      if (this.cache.size >= CACHE_MAX) this.cache.clear();
      this.cache.set(diag, c);
    }
    return c;
  }

  isHandoff(relay: string | null): boolean {
    return relay !== null && this.engineSuffix !== null && relay.endsWith(this.engineSuffix);
  }

  delivery(
    line: string,
    qid: string,
    f: DeliveryFacts,
    st: QueueState | undefined,
    suppress: SuppressRequest[],
  ): AcctRecord | null {
    const s = f.status;
    const type =
      s === 'sent' ? 'd' : s === 'deferred' ? 't' : s === 'bounced' || s.endsWith('expired') ? 'b' : null;
    if (type === null) return null;
    const diag = dsnDiag(f.text, f.service);
    // A deferral of the hand-off itself (engine down: relay=none) names the engine's address in its text.
    const handoff =
      this.isHandoff(f.relay) ||
      (this.engineSuffix !== null &&
        (f.relay === null || f.relay === 'none') &&
        f.text.includes(this.engineSuffix));
    let bounceCat: BounceCategory | null = null;
    let hard = false;
    if (type === 'b' && s !== 'bounced') {
      bounceCat = 'message-expired';
    } else if (type !== 'd') {
      const c = this.classify(f.text);
      if (c) {
        bounceCat = c.category;
        hard = c.hard && type === 'b';
      }
    }
    const mta = relayParts(f.relay);
    const rec: AcctRecord = {
      type,
      timeLogged: f.time,
      timeQueued: st?.timeQueued ?? Math.round(f.time - f.delay * 1000),
      orig: st?.from ?? null,
      rcpt: f.to,
      orcpt: f.origTo,
      dsnAction: type === 'd' ? 'relayed' : type === 't' ? 'delayed' : 'failed',
      dsnStatus: f.dsn,
      dsnDiag: diag,
      dsnMta: mta.mta,
      bounceCat,
      srcMta: st?.client ?? null,
      dlvType: f.service,
      dlvDestinationIp: mta.ip,
      dlvSize: st ? st.size || null : null,
      queue: handoff ? HANDOFF_QUEUE : null,
      path: handoff ? 'handoff' : 'postfix',
      postfixQueueId: qid,
      messageId: st?.messageId ?? null,
      rcptDomain: domainOf(f.to),
      dedupeKey: dedupeKey(line, f.time, null),
    };
    if (hard && f.to) suppress.push({ address: f.to, reason: diag, row: rec });
    return rec;
  }

  /** An expiry bounces every recipient still pending; one row each (or one without rcpt if none is known). */
  expired(
    line: string,
    time: number,
    qid: string,
    st: QueueState | undefined,
    from: string | null,
  ): AcctRecord[] {
    const base = {
      type: 'b' as const,
      timeLogged: time,
      timeQueued: st?.timeQueued ?? null,
      orig: from ?? st?.from ?? null,
      dsnAction: 'failed',
      bounceCat: 'message-expired' as const,
      srcMta: st?.client ?? null,
      dlvSize: st ? st.size || null : null,
      path: 'postfix' as const,
      postfixQueueId: qid,
      messageId: st?.messageId ?? null,
    };
    const pending = st?.pending ? Object.entries(st.pending) : [];
    if (pending.length === 0) {
      return [
        {
          ...base,
          rcpt: null,
          dsnStatus: '4.4.7',
          dsnDiag: 'message expired',
          dedupeKey: dedupeKey(line, time, ''),
        },
      ];
    }
    return pending.map(([rcpt, p]) => {
      const mta = relayParts(p.relay);
      return {
        ...base,
        rcpt,
        orcpt: p.orcpt,
        dsnStatus: p.dsn ?? '4.4.7',
        dsnDiag: p.diag ?? 'message expired',
        dsnMta: mta.mta,
        dlvDestinationIp: mta.ip,
        rcptDomain: domainOf(rcpt),
        dedupeKey: dedupeKey(line, time, rcpt),
      };
    });
  }

  reject(
    line: string,
    time: number,
    qid: string,
    from: string | null,
    to: string,
    client: string | null,
    text: string,
  ) {
    const status = /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(text);
    const c = this.classify(text);
    const rec: AcctRecord = {
      type: 'rj',
      timeLogged: time,
      orig: from,
      rcpt: to || null,
      dsnAction: 'failed',
      dsnStatus: status ? status[1]! : null,
      dsnDiag: /^\d{3} /.test(text) ? `smtp;${text}` : text,
      bounceCat: c ? c.category : null,
      srcMta: client,
      path: 'postfix',
      postfixQueueId: qid === 'NOQUEUE' ? null : qid,
      rcptDomain: to ? domainOf(to) : null,
      dedupeKey: dedupeKey(line, time, null),
    };
    return rec;
  }
}

/**
 * Content key: the same log line (with the year its stamp resolved to) is the same event, whichever file
 * or offset it is read from, so re-reading or re-importing adds nothing. Two independent 32-bit FNV-1a
 * hashes of the line plus its time: collisions would need two different lines in the same second with the
 * same 64-bit hash, and this costs a fraction of a cryptographic hash per row.
 */
export function dedupeKey(line: string, time: number, rcpt: string | null): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ line.length;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
  }
  const h = (h1 >>> 0).toString(36) + (h2 >>> 0).toString(36);
  return rcpt === null ? `pf:${time.toString(36)}:${h}` : `pf:${time.toString(36)}:${h}:${rcpt}`;
}

/** PowerMTA-style diagnostic: `smtp;550 5.1.1 …` for a remote reply, Postfix's own text otherwise. */
export function dsnDiag(text: string, service: string): string {
  const proto = service === 'lmtp' ? 'lmtp' : 'smtp';
  if (text.startsWith('host ')) {
    const said = text.indexOf(' said: ');
    if (said > 0) {
      let end = text.length;
      const inReply = text.lastIndexOf(' (in reply to ');
      if (inReply > said) end = inReply;
      return `${proto};${text.slice(said + 7, end)}`;
    }
  }
  const c = text.charCodeAt(0);
  if (c >= 50 && c <= 53 && text.charCodeAt(3) === 32) return `${proto};${text}`;
  return text;
}

/** `mx.example.com[192.0.2.1]:25` → PowerMTA's `mx.example.com (192.0.2.1)` and the IP. */
export function relayParts(relay: string | null): { mta: string | null; ip: string | null } {
  if (!relay || relay === 'none') return { mta: null, ip: null };
  const open = relay.indexOf('[');
  const close = relay.indexOf(']', open);
  if (open < 0 || close < 0) return { mta: relay, ip: null };
  const ip = relay.slice(open + 1, close);
  return { mta: `${relay.slice(0, open)} (${ip})`, ip };
}

function domainOf(addr: string): string | null {
  const at = addr.lastIndexOf('@');
  return at >= 0 ? addr.slice(at + 1).toLowerCase() : null;
}
