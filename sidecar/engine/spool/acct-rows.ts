/**
 * The engine's accounting rows, built from exactly what its spool journal records: an `r` row per
 * recipient from a message's `A` record, a `d`/`t`/`b` row from a recipient's `U` record carrying an
 * `AcctEvent`. The same builders run live and when recovery replays journal records the store has not
 * committed, so a replayed row is identical to the live one — and its deterministic dedupe key makes
 * the second copy a no-op.
 */
import type { AcctRecord } from '../../acct/record.js';
import type { AcctEvent, SpooledMessage } from '../types.js';

export type { AcctEvent, AttemptPlace } from '../types.js';

/** How the message came in, for its `r` rows. */
export interface IntakeSource {
  srcType: 'lmtp' | 'smtp';
  /** HELO/LHLO name the client gave. */
  helo: string | null;
}

const ACTION = { d: 'delivered', t: 'delayed', b: 'failed' } as const;

/** Unique per recipient event: a recipient's attempt count only grows, and `b`/`d` happen once. */
export function eventKey(messageId: string, index: number, type: string, attempts: number): string {
  return `engine:${messageId}:${index}:${type}:${attempts}`;
}

export function receivedKey(messageId: string, index: number): string {
  return `engine:${messageId}:${index}:r`;
}

/** The `d`/`t`/`b` row of recipient `index` after the attempt that left it at `attempts`. */
export function eventRow(
  msg: SpooledMessage,
  index: number,
  attempts: number,
  diag: string | null,
  ev: AcctEvent,
): AcctRecord {
  const r = msg.recipients[index];
  const p = ev.place;
  return {
    type: ev.type,
    timeLogged: ev.at,
    timeQueued: msg.receivedAt,
    orig: msg.sender,
    rcpt: r?.rcpt ?? null,
    orcpt: r?.orcpt ?? null,
    dsnAction: ACTION[ev.type],
    dsnStatus: ev.status,
    dsnDiag: diag,
    dsnMta: p.mta,
    bounceCat: ev.bounceCat,
    srcType: 'smtp',
    srcMta: msg.sourceIp,
    dlvType: 'smtp',
    dlvSourceIp: p.sourceIp,
    dlvDestinationIp: p.destinationIp,
    dlvEsmtpAvailable: p.esmtp,
    dlvSize: msg.size,
    vmta: p.vmta,
    vmtaPool: p.vmtaPool,
    queue: p.queue,
    jobId: msg.jobId,
    envId: msg.envId,
    path: 'engine',
    postfixQueueId: msg.postfixQueueId,
    messageId: msg.id,
    attempt: attempts,
    dedupeKey: eventKey(msg.id, index, ev.type, attempts),
  };
}

/** One `r` row per recipient of a message just made durable. */
export function receivedRows(msg: SpooledMessage, src: IntakeSource | null): AcctRecord[] {
  const srcMta = `${src?.helo ?? 'unknown'} (${msg.sourceIp})`;
  return msg.recipients.map((r, i) => ({
    type: 'r',
    timeLogged: msg.receivedAt,
    timeQueued: msg.receivedAt,
    orig: msg.sender,
    rcpt: r.rcpt,
    orcpt: r.orcpt,
    srcType: src?.srcType ?? 'smtp',
    srcMta,
    dlvSize: msg.size,
    vmta: msg.vmtaRequest,
    jobId: msg.jobId,
    envId: msg.envId,
    path: 'engine',
    postfixQueueId: msg.postfixQueueId,
    messageId: msg.id,
    dedupeKey: receivedKey(msg.id, i),
  }));
}

/** Journal form of an event: a compact array (one per recipient outcome, so it is on the hot path). */
export function encodeEvent(ev: AcctEvent): unknown[] {
  const p = ev.place;
  return [
    ev.type,
    ev.at,
    ev.status,
    ev.bounceCat,
    p.queue,
    p.vmta,
    p.vmtaPool,
    p.sourceIp,
    p.destinationIp,
    p.mta,
    p.esmtp,
  ];
}

export function decodeEvent(a: unknown): AcctEvent | null {
  if (!Array.isArray(a) || a.length < 11) return null;
  return {
    type: a[0],
    at: a[1],
    status: a[2],
    bounceCat: a[3] ?? null,
    place: {
      queue: a[4] ?? null,
      vmta: a[5] ?? null,
      vmtaPool: a[6] ?? null,
      sourceIp: a[7] ?? null,
      destinationIp: a[8] ?? null,
      mta: a[9] ?? null,
      esmtp: a[10] ?? null,
    },
  };
}
