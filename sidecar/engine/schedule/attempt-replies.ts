/**
 * What an attempt's replies mean for its recipients and its queue: delivered, bounced, deferred to
 * each recipient's own retry time, tried on the next MX, handed back when the source IP was just
 * disabled — and the queue-wide actions the deliverability reactor asks for (bounce-queue, defer-queue).
 */
import type { ReplyActions } from '../../deliverability/reactor.js';
import type { WarmupOutcome } from '../../deliverability/warmup.js';
import { AttemptOutcome, type AttemptPlace, type OutboundSession, type RcptReply } from '../deliver/index.js';
import type { SpooledMessage } from '../types.js';
import type { AttemptEnv } from './attempt-env.js';
import type { DeliveryQueue, Job } from './queue.js';

/** A recipient deferred by this attempt, with the reply it got. */
export interface DeferredRcpt {
  /** Index into msg.recipients. */
  i: number;
  reply: string;
  code: number;
}

/** Every recipient of a job deferred with the same reply (a connection that never got that far). */
export function allWith(job: Job, reply: string, code: number): DeferredRcpt[] {
  return job.rcpts.map((i) => ({ i, reply, code }));
}

export const deadline = (msg: SpooledMessage, q: DeliveryQueue) => msg.receivedAt + q.settings.bounceAfter;

export function placeFor(q: DeliveryQueue, job: Job, s: OutboundSession | null): AttemptPlace {
  return {
    queue: q.key,
    vmta: q.vmta,
    vmtaPool: job.vmtaPool,
    sourceIp: s ? s.localIp : q.route.sourceIp,
    destinationIp: s ? s.remoteIp : null,
    mta: s ? s.mtaLabel : null,
    esmtp: s ? (s.secure ? 'ESMTP+TLS' : 'ESMTP') : null,
  };
}

/** Outcome row and queue counters of one deferred recipient, whatever comes next for it. */
function noteDeferred(q: DeliveryQueue, d: DeferredRcpt, due: number, out: AttemptOutcome, t: number) {
  out.deferred(d.i, d.reply, d.code, due);
  q.deferred++;
  q.noteError(d.reply, t);
}

/**
 * Each recipient keeps its own reply and its own retry time (from its own attempt count); recipients
 * due at the same moment wait in one retry job.
 */
export function defer(
  env: AttemptEnv,
  q: DeliveryQueue,
  job: Job,
  rcpts: DeferredRcpt[],
  out: AttemptOutcome,
) {
  if (rcpts.length === 0) return;
  const t = env.now();
  const byDue = new Map<number, number[]>();
  for (const d of rcpts) {
    const attempts = (job.msg.recipients[d.i]?.attempts ?? 0) + 1;
    const due = Math.min(t + q.retryDelay(attempts), deadline(job.msg, q));
    noteDeferred(q, d, due, out, t);
    const group = byDue.get(due);
    if (group) group.push(d.i);
    else byDue.set(due, [d.i]);
  }
  for (const [due, group] of byDue) q.retry.push({ ...job, rcpts: group, dueAt: due, skipMx: null });
}

/**
 * The source was disabled by this reply: the recipients are tried again at once, which puts them in
 * front of the scheduler's hand-off to another pool member (or makes them wait for the source).
 */
export function handBack(
  env: AttemptEnv,
  q: DeliveryQueue,
  job: Job,
  rcpts: DeferredRcpt[],
  out: AttemptOutcome,
) {
  if (rcpts.length === 0) return;
  const t = env.now();
  for (const d of rcpts) noteDeferred(q, d, t, out, t);
  q.ready.unshift({ ...job, rcpts: rcpts.map((d) => d.i), dueAt: t, skipMx: null });
}

/** `bounce-queue`: every recipient the queue holds fails with the reply, now. */
function bounceQueue(env: AttemptEnv, q: DeliveryQueue, reply: string, code: number): void {
  const t = env.now();
  for (const job of [...q.ready.drain(), ...q.retry.drain()]) {
    const out = new AttemptOutcome(env.ports, job.msg, placeFor(q, job, null), t);
    for (const i of job.rcpts) out.failed(i, reply, code, { attempted: false });
    q.bounced += job.rcpts.length;
    env.events.settled(q, job, out);
  }
}

/** `defer-queue`: nothing more goes out for one retry interval; the queued jobs wait in the retry heap. */
export function deferQueue(env: AttemptEnv, q: DeliveryQueue, reply: string): void {
  const t = env.now();
  const until = t + q.retryDelay(1);
  q.suspendedUntil = Math.max(q.suspendedUntil, until);
  for (const job of q.ready.drain()) q.retry.push({ ...job, dueAt: until });
  q.noteError(reply, t);
}

/** Sorts a transaction's replies into outcomes, settles them, then runs any queue-wide action. */
export function settleReplies(
  env: AttemptEnv,
  q: DeliveryQueue,
  s: OutboundSession,
  job: Job,
  replies: RcptReply[],
  actions: Array<ReplyActions | null>,
  t: number,
): void {
  const out = new AttemptOutcome(env.ports, job.msg, placeFor(q, job, s), t);
  const deferred: DeferredRcpt[] = [];
  const handedBack: DeferredRcpt[] = [];
  const skipMx: number[] = [];
  let delivered = 0;
  let bounced = 0;
  let queueBounce: RcptReply | null = null;
  let queueDefer: RcptReply | null = null;
  replies.forEach((r, k) => {
    const i = job.rcpts[r.index];
    if (i === undefined) return;
    const a = actions[k];
    if (r.code >= 200 && r.code < 300) {
      out.delivered(i, r.reply, r.code);
      q.delivered++;
      delivered++;
    } else if (a?.sourceDisabled) handedBack.push({ i, reply: r.reply, code: r.code });
    else if (a?.bounceRcpt || a?.bounceQueue || (r.code >= 500 && r.remote)) {
      out.failed(i, r.reply, r.code, { attempted: true });
      q.bounced++;
      bounced++;
      q.noteError(r.reply, t);
      if (a?.bounceQueue) queueBounce = r;
    } else if (a?.skipMx) skipMx.push(i);
    else {
      deferred.push({ i, reply: r.reply, code: r.code });
      if (a?.deferQueue) queueDefer = r;
    }
  });
  defer(env, q, job, deferred, out);
  handBack(env, q, job, handedBack, out);
  if (skipMx.length > 0)
    q.ready.unshift({ ...job, rcpts: skipMx, skipMx: new Set([...(job.skipMx ?? []), s.opts.mxName]) });
  if (delivered > 0) q.meter.add(t);
  env.events.settled(q, job, out);
  const outcome: WarmupOutcome = delivered > 0 ? 'delivered' : bounced > 0 ? 'bounced' : 'deferred';
  env.deliv.warmup.record(q.vmta, q.domain, outcome);
  const qb = queueBounce as RcptReply | null;
  if (qb) bounceQueue(env, q, qb.reply, qb.code);
  const qd = queueDefer as RcptReply | null;
  if (qd) deferQueue(env, q, qd.reply);
}
