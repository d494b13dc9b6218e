/**
 * One delivery attempt of one job on one queue: open a session (or use an idle one), DKIM-sign, send,
 * and turn every reply into outcomes — feeding each remote reply to the deliverability reactor and
 * carrying out what it says (bounce the recipient or the queue, try the next MX, defer the queue, hand
 * the job to another pool member when the source IP was just disabled). The scheduler decides when an
 * attempt may start; this module decides what its result means.
 */
import { Readable } from 'node:stream';
import { errorMessage, isFreightError } from '../../common/errors.js';
import { createLogger } from '../../common/log.js';
import type { FreightConfig } from '../../config/model.js';
import type { ReplyActions } from '../../deliverability/reactor.js';
import type { WarmupOutcome } from '../../deliverability/warmup.js';
import { dkimRequestFor } from '../../dkim/signer.js';
import type { DnsResolver } from '../../dns/resolver.js';
import type { EngineDeliverability } from '../schedule/deliverability.js';
import type { DeliveryQueue, Job } from '../schedule/queue.js';
import type { SpooledMessage } from '../types.js';
import { connect, type SessionTimeouts } from './connector.js';
import { AttemptOutcome, type AttemptPlace, type OutcomePorts } from './outcome.js';
import type { OutboundSession, RcptReply } from './session.js';

const log = createLogger('engine/attempt');

/** After a remote refused a further connection while others are open: wait before opening again. */
const EXTRA_CONNECTION_BACKOFF = 10_000;
/** Bodies up to this size are read whole for an attempt; larger ones are streamed from the spool. */
const INLINE_BODY_MAX = 1024 * 1024;

/** What an attempt needs from the scheduler that owns the queues. */
export interface AttemptContext {
  ports: OutcomePorts;
  config(): FreightConfig;
  resolver: DnsResolver;
  timeouts: SessionTimeouts;
  now(): number;
  random(): number;
  closed(): boolean;
  deliv: EngineDeliverability;
  pump(q: DeliveryQueue): void;
  armRetry(q: DeliveryQueue): void;
  /** Counts the attempt's final recipients, forgets finished messages and commits the outcome. */
  settle(q: DeliveryQueue, job: Job, out: AttemptOutcome): void;
}

export interface Attempts {
  openAndRun(q: DeliveryQueue, job: Job): Promise<void>;
  run(q: DeliveryQueue, s: OutboundSession, job: Job): Promise<void>;
  /** Bounces a job whose bounce-after has passed; true if it did. */
  expireIfDue(q: DeliveryQueue, job: Job, t: number): boolean;
}

/** A recipient deferred by this attempt, with the reply it got. */
interface DeferredRcpt {
  /** Index into msg.recipients. */
  i: number;
  reply: string;
  code: number;
}

/** Every recipient of a job deferred with the same reply (a connection that never got that far). */
function allWith(job: Job, reply: string, code: number): DeferredRcpt[] {
  return job.rcpts.map((i) => ({ i, reply, code }));
}

function esmtpLabel(s: OutboundSession): string {
  return s.secure ? 'ESMTP+TLS' : 'ESMTP';
}

/** The DKIM-Signature field, then the spooled message. */
function prepend(header: string, body: NodeJS.ReadableStream): Readable {
  const inner = body as Readable;
  return Readable.from(
    (async function* () {
      try {
        yield Buffer.from(header, 'binary');
        for await (const chunk of inner) yield chunk as Buffer;
      } finally {
        inner.destroy();
      }
    })(),
  );
}

export function createAttempts(ctx: AttemptContext): Attempts {
  const { ports, deliv } = ctx;

  const deadline = (msg: SpooledMessage, q: DeliveryQueue) => msg.receivedAt + q.settings.bounceAfter;

  function placeFor(q: DeliveryQueue, job: Job, s: OutboundSession | null): AttemptPlace {
    return {
      queue: q.key,
      vmta: q.vmta,
      vmtaPool: job.vmtaPool,
      sourceIp: s ? s.localIp : q.route.sourceIp,
      destinationIp: s ? s.remoteIp : null,
      mta: s ? s.mtaLabel : null,
      esmtp: s ? esmtpLabel(s) : null,
    };
  }

  /**
   * Each recipient keeps its own reply and its own retry time (from its own attempt count); recipients
   * due at the same moment wait in one retry job.
   */
  function defer(q: DeliveryQueue, job: Job, rcpts: DeferredRcpt[], out: AttemptOutcome) {
    if (rcpts.length === 0) return;
    const t = ctx.now();
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
    ctx.armRetry(q);
  }

  /** Outcome row and queue counters of one deferred recipient, whatever comes next for it. */
  function noteDeferred(q: DeliveryQueue, d: DeferredRcpt, due: number, out: AttemptOutcome, t: number) {
    out.deferred(d.i, d.reply, d.code, due);
    q.deferred++;
    q.noteError(d.reply, t);
  }

  /**
   * The source was disabled by this reply: the recipients are tried again at once, which puts them in
   * front of the scheduler's hand-back to another pool member (or makes them wait for the source).
   */
  function handBack(q: DeliveryQueue, job: Job, rcpts: DeferredRcpt[], out: AttemptOutcome) {
    if (rcpts.length === 0) return;
    const t = ctx.now();
    for (const d of rcpts) noteDeferred(q, d, t, out, t);
    q.ready.unshift({ ...job, rcpts: rcpts.map((d) => d.i), dueAt: t, skipMx: null });
  }

  /** `bounce-queue`: every recipient the queue holds fails with the reply, now. */
  function bounceQueue(q: DeliveryQueue, reply: string, code: number): void {
    const t = ctx.now();
    for (const job of [...q.ready.drain(), ...q.retry.drain()]) {
      const out = new AttemptOutcome(ports, job.msg, placeFor(q, job, null), t);
      for (const i of job.rcpts) out.failed(i, reply, code, { attempted: false });
      q.bounced += job.rcpts.length;
      ctx.settle(q, job, out);
    }
  }

  /** `defer-queue`: nothing more goes out for one retry interval; the queued jobs wait in the retry heap. */
  function deferQueue(q: DeliveryQueue, reply: string): void {
    const t = ctx.now();
    const until = t + q.retryDelay(1);
    q.suspendedUntil = Math.max(q.suspendedUntil, until);
    for (const job of q.ready.drain()) q.retry.push({ ...job, dueAt: until });
    q.noteError(reply, t);
    ctx.armRetry(q);
  }

  function expireIfDue(q: DeliveryQueue, job: Job, t: number): boolean {
    if (t < deadline(job.msg, q)) return false;
    const out = new AttemptOutcome(ports, job.msg, placeFor(q, job, null), t);
    for (const i of job.rcpts) {
      const last = job.msg.recipients[i]?.lastDiag?.replace(/^smtp;/, '') ?? 'never attempted';
      out.failed(i, `550 5.4.7 delivery time expired (bounce-after); last error: ${last}`, 550, {
        category: 'message-expired',
        attempted: false,
      });
    }
    q.bounced += job.rcpts.length;
    ctx.settle(q, job, out);
    return true;
  }

  function react(q: DeliveryQueue, reply: string, sourceIp: string | null): ReplyActions {
    return deliv.reactor.onReply({ domain: q.domain, vmta: q.vmta, sourceIp }, reply, q.settings);
  }

  async function openAndRun(q: DeliveryQueue, job: Job): Promise<void> {
    q.connecting++;
    q.inFlight += job.rcpts.length;
    let result: Awaited<ReturnType<typeof connect>>;
    try {
      result = await connect({
        resolver: ctx.resolver,
        route: q.route,
        settings: q.settings,
        mxDomain: job.mxDomain,
        port: ctx.config().global.remoteSmtpPort,
        timeouts: ctx.timeouts,
        skipMx: job.skipMx,
        random: ctx.random,
      });
    } catch (err) {
      log.error('connection setup failed unexpectedly', { queue: q.key, error: errorMessage(err) });
      result = {
        kind: 'temporary',
        code: 451,
        reply: `451 4.3.0 ${errorMessage(err)}`,
        remoteRefused: false,
      };
    }
    q.connecting--;
    q.inFlight -= job.rcpts.length;
    if (ctx.closed()) {
      if (result.kind === 'session') result.session.close();
      return;
    }
    const t = ctx.now();
    if (result.kind === 'session') {
      q.connectFailures = 0;
      const s = result.session;
      q.sessions.add(s);
      s.onClose(() => {
        q.sessions.delete(s);
        q.forgetIdle(s);
        ctx.pump(q);
      });
      await run(q, s, job);
      return;
    }
    const acts =
      result.kind === 'temporary' && result.remoteRefused ? react(q, result.reply, q.route.sourceIp) : null;
    if (result.kind === 'permanent') {
      const out = new AttemptOutcome(ports, job.msg, placeFor(q, job, null), t);
      for (const i of job.rcpts)
        out.failed(i, result.reply, result.code, { category: 'bad-domain', attempted: true });
      q.bounced += job.rcpts.length;
      q.noteError(result.reply, t);
      ctx.settle(q, job, out);
    } else if (acts?.sourceDisabled) {
      const out = new AttemptOutcome(ports, job.msg, placeFor(q, job, null), t);
      handBack(q, job, allWith(job, result.reply, result.code), out);
      ctx.settle(q, job, out);
      deliv.warmup.record(q.vmta, q.domain, 'deferred');
    } else if (result.remoteRefused && q.sessions.size > 0) {
      // The remote limits our connections; the open ones carry on with this job.
      q.ready.unshift({ ...job, skipMx: null });
      q.msgRate.giveBack();
      q.suspendedUntil = t + EXTRA_CONNECTION_BACKOFF;
      q.noteError(result.reply, t);
    } else {
      const out = new AttemptOutcome(ports, job.msg, placeFor(q, job, null), t);
      defer(q, job, allWith(job, result.reply, result.code), out);
      ctx.settle(q, job, out);
      deliv.warmup.record(q.vmta, q.domain, 'deferred');
      q.connectFailures++;
      q.suspendedUntil = t + q.retryDelay(q.connectFailures);
      if (acts?.deferQueue) deferQueue(q, result.reply);
    }
    ctx.pump(q);
  }

  /** The message as it goes out (signed when the queue says so) and its size; or a local failure reply. */
  async function prepare(
    q: DeliveryQueue,
    msg: SpooledMessage,
  ): Promise<{ body: Buffer | Readable; size: number } | { localReply: string }> {
    // Typical bodies go out as one buffer (one socket write, no stream per attempt); large ones stream.
    const whole = msg.size <= INLINE_BODY_MAX ? await ports.spool.readBody(msg) : null;
    const open = () => (whole ? Readable.from([whole]) : (ports.spool.openBody(msg) as Readable));
    const req = dkimRequestFor(q.settings);
    if (!req) return { body: whole ?? open(), size: msg.size };
    try {
      const sig = await deliv.signer.sign({ id: msg.id, open }, req);
      const size = msg.size + Buffer.byteLength(sig.header, 'binary');
      if (whole) return { body: Buffer.concat([Buffer.from(sig.header, 'binary'), whole]), size };
      return { body: prepend(sig.header, open()), size };
    } catch (err) {
      if (!isFreightError(err) || !err.code.startsWith('DKIM_')) throw err;
      if (q.settings.dkimRequired)
        return { localReply: `451 4.7.0 local error: ${err.code}: ${err.message}` };
      log.warn('sending unsigned: no DKIM signature could be made', {
        id: msg.id,
        queue: q.key,
        error: err.message,
      });
      return { body: whole ?? open(), size: msg.size };
    }
  }

  async function run(q: DeliveryQueue, s: OutboundSession, job: Job): Promise<void> {
    const msg = job.msg;
    q.inFlight += job.rcpts.length;
    let replies: RcptReply[];
    const localFailure = (reply: string) =>
      job.rcpts.map((_, index) => ({ index, code: 451, reply, remote: false }));
    try {
      const prepared = await prepare(q, msg);
      if ('localReply' in prepared) replies = localFailure(prepared.localReply);
      else {
        replies = await s.send(
          {
            from: msg.sender,
            to: job.rcpts.map((i) => msg.recipients[i]?.rcpt ?? ''),
            size: prepared.size,
            envId: msg.envId,
            ret: msg.ret,
          },
          prepared.body,
        );
      }
    } catch (err) {
      log.error('cannot send spooled message', { id: msg.id, error: errorMessage(err) });
      replies = localFailure(`451 4.3.0 local error: ${errorMessage(err)}`);
    }
    q.inFlight -= job.rcpts.length;
    const t = ctx.now();
    const settings = q.settings;
    const all421 = replies.length > 0 && replies.every((r) => r.code === 421);
    const actions = replies.map((r) => (r.remote ? react(q, r.reply, s.localIp) : null));
    const sourceDisabled = actions.some((a) => a?.sourceDisabled);
    if (
      !sourceDisabled &&
      all421 &&
      settings.smtp421MeansMxUnavailable &&
      !(job.skipMx?.has(s.opts.mxName) ?? false)
    ) {
      // This MX is unavailable: try the job on the next MX at once, without counting an attempt.
      q.ready.unshift({ ...job, skipMx: new Set([...(job.skipMx ?? []), s.opts.mxName]) });
    } else {
      settleReplies(q, s, job, replies, actions, t);
    }
    const limit = settings.maxMsgPerConnection;
    if (s.isClosed || (limit > 0 && s.messagesSent >= limit) || ctx.closed() || sourceDisabled) s.close();
    else q.parkIdle(s);
    ctx.pump(q);
  }

  function settleReplies(
    q: DeliveryQueue,
    s: OutboundSession,
    job: Job,
    replies: RcptReply[],
    actions: Array<ReplyActions | null>,
    t: number,
  ): void {
    const out = new AttemptOutcome(ports, job.msg, placeFor(q, job, s), t);
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
    defer(q, job, deferred, out);
    handBack(q, job, handedBack, out);
    if (skipMx.length > 0)
      q.ready.unshift({ ...job, rcpts: skipMx, skipMx: new Set([...(job.skipMx ?? []), s.opts.mxName]) });
    if (delivered > 0) q.meter.add(t);
    ctx.settle(q, job, out);
    const outcome: WarmupOutcome = delivered > 0 ? 'delivered' : bounced > 0 ? 'bounced' : 'deferred';
    deliv.warmup.record(q.vmta, q.domain, outcome);
    const qb = queueBounce as RcptReply | null;
    if (qb) bounceQueue(q, qb.reply, qb.code);
    const qd = queueDefer as RcptReply | null;
    if (qd) deferQueue(q, qd.reply);
  }

  return { openAndRun, run, expireIfDue };
}
