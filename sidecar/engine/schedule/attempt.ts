/**
 * One delivery attempt of one job on one queue: open a session (or use an idle one), send the prepared
 * message, feed each remote reply to the deliverability reactor and carry out what it says. The pump
 * decides when an attempt may start; the attempt reports what it changed through AttemptEvents only.
 */
import { errorMessage } from '../../common/errors.js';
import { createLogger } from '../../common/log.js';
import type { ReplyActions } from '../../deliverability/reactor.js';
import {
  AttemptOutcome,
  type ConnectResult,
  connect,
  type OutboundSession,
  type RcptReply,
} from '../deliver/index.js';
import { prepareBody } from './attempt-body.js';
import type { AttemptEnv } from './attempt-env.js';
import {
  allWith,
  deadline,
  defer,
  deferQueue,
  handBack,
  placeFor,
  settleReplies,
} from './attempt-replies.js';
import type { DeliveryQueue, Job } from './queue.js';

const log = createLogger('engine/attempt');

/** After a remote refused a further connection while others are open: wait before opening again. */
const EXTRA_CONNECTION_BACKOFF = 10_000;

export class Attempts {
  constructor(private readonly env: AttemptEnv) {}

  /** Bounces a job whose bounce-after has passed; true if it did. */
  expireIfDue(q: DeliveryQueue, job: Job, t: number): boolean {
    if (t < deadline(job.msg, q)) return false;
    const out = new AttemptOutcome(this.env.ports, job.msg, placeFor(q, job, null), t);
    for (const i of job.rcpts) {
      const last = job.msg.recipients[i]?.lastDiag?.replace(/^smtp;/, '') ?? 'never attempted';
      out.failed(i, `550 5.4.7 delivery time expired (bounce-after); last error: ${last}`, 550, {
        category: 'message-expired',
        attempted: false,
      });
    }
    q.bounced += job.rcpts.length;
    this.env.events.settled(q, job, out);
    return true;
  }

  private react(q: DeliveryQueue, reply: string, sourceIp: string | null): ReplyActions {
    return this.env.deliv.reactor.onReply({ domain: q.domain, vmta: q.vmta, sourceIp }, reply, q.settings);
  }

  private async tryConnect(q: DeliveryQueue, job: Job): Promise<ConnectResult> {
    const env = this.env;
    try {
      return await connect({
        resolver: env.resolver,
        route: q.route,
        settings: q.settings,
        mxDomain: job.mxDomain,
        port: env.config().global.remoteSmtpPort,
        timeouts: env.timeouts,
        skipMx: job.skipMx,
        random: env.random,
      });
    } catch (err) {
      log.error('connection setup failed unexpectedly', { queue: q.key, error: errorMessage(err) });
      return { kind: 'temporary', code: 451, reply: `451 4.3.0 ${errorMessage(err)}`, remoteRefused: false };
    }
  }

  async openAndRun(q: DeliveryQueue, job: Job): Promise<void> {
    const events = this.env.events;
    q.connecting++;
    q.inFlight += job.rcpts.length;
    const result = await this.tryConnect(q, job);
    q.connecting--;
    q.inFlight -= job.rcpts.length;
    if (events.stopping()) {
      if (result.kind === 'session') result.session.close();
      return;
    }
    if (result.kind !== 'session') {
      this.connectFailed(q, job, result);
      events.changed(q);
      return;
    }
    q.connectFailures = 0;
    const s = result.session;
    q.sessions.add(s);
    s.onClose(() => {
      q.sessions.delete(s);
      q.forgetIdle(s);
      events.changed(q);
    });
    await this.run(q, s, job);
  }

  /** No session: bounce (no MX will take it), hand back, wait for an open session, or defer. */
  private connectFailed(
    q: DeliveryQueue,
    job: Job,
    result: Exclude<ConnectResult, { kind: 'session' }>,
  ): void {
    const env = this.env;
    const t = env.now();
    const acts =
      result.kind === 'temporary' && result.remoteRefused
        ? this.react(q, result.reply, q.route.sourceIp)
        : null;
    if (result.kind === 'permanent') {
      const out = new AttemptOutcome(env.ports, job.msg, placeFor(q, job, null), t);
      for (const i of job.rcpts)
        out.failed(i, result.reply, result.code, { category: 'bad-domain', attempted: true });
      q.bounced += job.rcpts.length;
      q.noteError(result.reply, t);
      env.events.settled(q, job, out);
    } else if (acts?.sourceDisabled) {
      const out = new AttemptOutcome(env.ports, job.msg, placeFor(q, job, null), t);
      handBack(env, q, job, allWith(job, result.reply, result.code), out);
      env.events.settled(q, job, out);
      env.deliv.warmup.record(q.vmta, q.domain, 'deferred');
    } else if (result.remoteRefused && q.sessions.size > 0) {
      // The remote limits our connections; the open ones carry on with this job.
      q.ready.unshift({ ...job, skipMx: null });
      q.msgRate.giveBack();
      q.suspendedUntil = t + EXTRA_CONNECTION_BACKOFF;
      q.noteError(result.reply, t);
    } else {
      const out = new AttemptOutcome(env.ports, job.msg, placeFor(q, job, null), t);
      defer(env, q, job, allWith(job, result.reply, result.code), out);
      env.events.settled(q, job, out);
      env.deliv.warmup.record(q.vmta, q.domain, 'deferred');
      q.connectFailures++;
      q.suspendedUntil = t + q.retryDelay(q.connectFailures);
      if (acts?.deferQueue) deferQueue(env, q, result.reply);
    }
  }

  /** The transaction's per-recipient replies, or one local failure reply for each recipient. */
  private async send(q: DeliveryQueue, s: OutboundSession, job: Job): Promise<RcptReply[]> {
    const msg = job.msg;
    const localFailure = (reply: string) =>
      job.rcpts.map((_, index) => ({ index, code: 451, reply, remote: false }));
    try {
      const prepared = await prepareBody(this.env.ports, this.env.deliv, q, msg);
      if ('localReply' in prepared) return localFailure(prepared.localReply);
      return await s.send(
        {
          from: msg.sender,
          to: job.rcpts.map((i) => msg.recipients[i]?.rcpt ?? ''),
          size: prepared.size,
          envId: msg.envId,
          ret: msg.ret,
        },
        prepared.body,
      );
    } catch (err) {
      log.error('cannot send spooled message', { id: msg.id, error: errorMessage(err) });
      return localFailure(`451 4.3.0 local error: ${errorMessage(err)}`);
    }
  }

  async run(q: DeliveryQueue, s: OutboundSession, job: Job): Promise<void> {
    const env = this.env;
    q.inFlight += job.rcpts.length;
    const replies = await this.send(q, s, job);
    q.inFlight -= job.rcpts.length;
    const t = env.now();
    const settings = q.settings;
    const all421 = replies.length > 0 && replies.every((r) => r.code === 421);
    const actions = replies.map((r) => (r.remote ? this.react(q, r.reply, s.localIp) : null));
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
      settleReplies(env, q, s, job, replies, actions, t);
    }
    const limit = settings.maxMsgPerConnection;
    if (s.isClosed || (limit > 0 && s.messagesSent >= limit) || env.events.stopping() || sourceDisabled)
      s.close();
    else q.parkIdle(s);
    env.events.changed(q);
  }
}
