/**
 * The in-memory form of a spooled message, kept small because a million queued recipients must fit in
 * about 500 MB: one class shape for every message and recipient (V8 keeps the fields in-object), the body
 * located by two small integers (data segment, offset), and repeated strings (sender, source IP, job,
 * vmta) interned so a large job shares one copy. Also the journal encoding of messages and updates.
 */

import type { QueuedRecipient, RecipientState, RecipientUpdate, SpooledMessage } from '../types.js';
import { encodeEvent, type IntakeSource } from './acct-rows.js';

const interned = new Map<string, string>();

/** One shared copy of a frequently repeated string (bounded so hostile input cannot grow it forever). */
export function intern(s: string | null): string | null {
  if (s === null) return null;
  const hit = interned.get(s);
  if (hit !== undefined) return hit;
  if (interned.size >= 100_000) interned.clear();
  interned.set(s, s);
  return s;
}

export class SpoolRecipient implements QueuedRecipient {
  rcpt: string;
  orcpt: string | null;
  notify: string | null;
  state: RecipientState;
  attempts: number;
  nextAttemptAt: number;
  lastDiag: string | null;
  /** A DSN for this recipient's bounce is spooled (journal `D`), so recovery does not send another. */
  dsnSpooled: boolean;

  constructor(rcpt: string, orcpt: string | null, notify: string | null) {
    this.rcpt = rcpt;
    this.orcpt = orcpt;
    this.notify = intern(notify);
    this.state = 'queued';
    this.attempts = 0;
    this.nextAttemptAt = 0;
    this.lastDiag = null;
    this.dsnSpooled = false;
  }
}

/** Everything intake knows about a message before it is spooled. */
export interface MessageDraft {
  sender: string;
  envId: string | null;
  ret: 'FULL' | 'HDRS' | null;
  jobId: string | null;
  vmtaRequest: string | null;
  postfixQueueId: string | null;
  messageId: string | null;
  sourceIp: string;
  recipients: { rcpt: string; orcpt: string | null; notify: string | null }[];
  /** Protocol and HELO name of the intake session (for the `r` rows). */
  source?: IntakeSource | null;
}

export class SpoolEntry implements SpooledMessage {
  id: string;
  sender: string;
  envId: string | null;
  ret: 'FULL' | 'HDRS' | null;
  receivedAt: number;
  size: number;
  jobId: string | null;
  vmtaRequest: string | null;
  postfixQueueId: string | null;
  messageId: string | null;
  sourceIp: string;
  srcType: IntakeSource['srcType'] | null;
  helo: string | null;
  recipients: SpoolRecipient[];
  /** Data segment holding the body (segments.ts); LEGACY_BODY for a file of its own. */
  seg: number;
  off: number;

  constructor(id: string, draft: MessageDraft, receivedAt: number, size: number, seg: number, off: number) {
    this.id = id;
    this.sender = intern(draft.sender)!;
    this.envId = draft.envId;
    this.ret = draft.ret;
    this.receivedAt = receivedAt;
    this.size = size;
    this.jobId = intern(draft.jobId);
    this.vmtaRequest = intern(draft.vmtaRequest);
    this.postfixQueueId = draft.postfixQueueId;
    this.messageId = draft.messageId;
    this.sourceIp = intern(draft.sourceIp)!;
    this.srcType = draft.source?.srcType ?? null;
    this.helo = intern(draft.source?.helo ?? null);
    this.recipients = draft.recipients.map((r) => new SpoolRecipient(r.rcpt, r.orcpt, r.notify));
    this.seg = seg;
    this.off = off;
  }

  /** How the message came in, as its `r` rows tell it. */
  get intakeSource(): IntakeSource | null {
    return this.srcType ? { srcType: this.srcType, helo: this.helo } : null;
  }

  /** True when no recipient is still queued. */
  get final(): boolean {
    return this.recipients.every((r) => r.state !== 'queued');
  }
}

/** `seg` of a message spooled by a version that wrote one file per body (`msg/<hh>/<id>.eml`). */
export const LEGACY_BODY = -1;

/** Journal line for a message: its envelope and every recipient's current state. */
/** `q`: the record's accounting number (a fresh intake); snapshots restate messages without one. */
export function encodeAdd(m: SpoolEntry, q?: number): string {
  return JSON.stringify({
    t: 'A',
    q,
    id: m.id,
    s: m.sender,
    e: m.envId,
    r: m.ret,
    at: m.receivedAt,
    z: m.size,
    g: m.seg,
    o: m.off,
    j: m.jobId,
    v: m.vmtaRequest,
    p: m.postfixQueueId,
    m: m.messageId,
    ip: m.sourceIp,
    st: m.srcType,
    h: m.helo,
    rc: m.recipients.map((r) => [
      r.rcpt,
      r.orcpt,
      r.notify,
      r.state,
      r.attempts,
      r.nextAttemptAt,
      r.lastDiag,
      r.dsnSpooled ? 1 : 0,
    ]),
  });
}

/** `q`: the accounting number of an update that carries an accounting event. */
export function encodeUpdate(u: RecipientUpdate, q?: number): string {
  return JSON.stringify({
    t: 'U',
    q,
    id: u.messageId,
    i: u.rcptIndex,
    s: u.state,
    a: u.attempts,
    n: u.nextAttemptAt,
    d: u.lastDiag,
    k: u.acct ? encodeEvent(u.acct) : undefined,
  });
}

/** The body was copied to another segment (segment compaction). */
export function encodeMove(id: string, seg: number, off: number): string {
  return JSON.stringify({ t: 'M', id, g: seg, o: off });
}

/** `refused`: the message was never acknowledged (its round failed), so it has no `r` rows. */
export function encodeRemove(id: string, refused = false): string {
  return `{"t":"R","id":${JSON.stringify(id)}${refused ? ',"x":1' : ''}}`;
}

/** DSN spooled for these recipient indexes of a message. */
export function encodeDsnDone(id: string, indexes: number[]): string {
  return JSON.stringify({ t: 'D', id, i: indexes });
}

type Row = [string, string | null, string | null, RecipientState, number, number, string | null, number?];

/** Rebuild a SpoolEntry from an `A` journal record. */
export function decodeAdd(rec: Record<string, unknown>): SpoolEntry {
  const rows = rec.rc as Row[];
  const entry = new SpoolEntry(
    rec.id as string,
    {
      sender: rec.s as string,
      envId: (rec.e as string | null) ?? null,
      ret: (rec.r as 'FULL' | 'HDRS' | null) ?? null,
      jobId: (rec.j as string | null) ?? null,
      vmtaRequest: (rec.v as string | null) ?? null,
      postfixQueueId: (rec.p as string | null) ?? null,
      messageId: (rec.m as string | null) ?? null,
      sourceIp: rec.ip as string,
      source:
        rec.st === 'lmtp' || rec.st === 'smtp'
          ? { srcType: rec.st, helo: (rec.h as string | null) ?? null }
          : null,
      recipients: rows.map((r) => ({ rcpt: r[0], orcpt: r[1], notify: r[2] })),
    },
    rec.at as number,
    rec.z as number,
    typeof rec.g === 'number' ? rec.g : LEGACY_BODY,
    typeof rec.o === 'number' ? rec.o : 0,
  );
  rows.forEach((r, i) => {
    const rcpt = entry.recipients[i]!;
    rcpt.state = r[3];
    rcpt.attempts = r[4];
    rcpt.nextAttemptAt = r[5];
    rcpt.lastDiag = r[6];
    rcpt.dsnSpooled = r[7] === 1;
  });
  return entry;
}
