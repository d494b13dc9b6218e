/**
 * The delivery half of the engine: routes submitted recipients into per-(domain, vmta) queues and
 * drives each queue on its own (timers per queue, no global concurrency a stuck queue could exhaust):
 * max-smtp-out, max-msg-rate, max-connect-rate, max-msg-per-connection, max-rcpt-per-message,
 * retry-after, bounce-after, pause/resume, connection reuse and idle close. Implements EngineControl.
 */
import type { Readable } from 'node:stream';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import type { DomainSettings, FreightConfig } from '../config/model.js';
import { connect, DEFAULT_TIMEOUTS, type SessionTimeouts } from './connector.js';
import type {
  DeliveryStatus,
  DomainInfo,
  EngineControl,
  QueueActionResult,
  QueueInfo,
  ScheduleResult,
  VmtaInfo,
} from './control-types.js';
import { createDnsResolver, type DnsResolver } from './dns-resolver.js';
import { AttemptOutcome, type AttemptPlace, type OutcomePorts } from './outcome.js';
import { DeliveryQueue, type Job } from './queue.js';
import { deliveryStatus, domainInfos, queueInfo, vmtaInfos } from './queue-report.js';
import { DEFAULT_VMTA, domainOf, type Route, Router, type VmtaChoice } from './routing.js';
import type { OutboundSession, RcptReply } from './session.js';
import type { SchedulerPort, SpooledMessage } from './types.js';

const log = createLogger('engine/scheduler');

/** setTimeout's ceiling (~24.8 days). */
const MAX_TIMER = 2 ** 31 - 1;
/** After a remote refused a further connection while others are open: wait before opening again. */
const EXTRA_CONNECTION_BACKOFF = 10_000;

export interface SchedulerDeps extends OutcomePorts {
  config: FreightConfig;
  /** Default: a dns2 resolver against config.global.dnsServer. */
  resolver?: DnsResolver;
  timeouts?: Partial<SessionTimeouts>;
  now?: () => number;
  random?: () => number;
}

export interface Scheduler extends SchedulerPort, EngineControl {
  /** Apply a new config: queues keep their mail and sessions; new limits apply from now on. */
  reconfigure(config: FreightConfig): void;
  /** Close every session and timer. Queued mail stays in the spool for the next start. */
  close(): Promise<void>;
}

interface MessageState {
  msg: SpooledMessage;
  pending: number;
}

function esmtpLabel(s: OutboundSession): string {
  return s.secure ? 'ESMTP+TLS' : 'ESMTP';
}

export function createScheduler(deps: SchedulerDeps): Scheduler {
  let config = deps.config;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const timeouts: SessionTimeouts = { ...DEFAULT_TIMEOUTS, ...deps.timeouts };
  const resolver = deps.resolver ?? createDnsResolver({ server: config.global.dnsServer });
  const router = new Router(config);
  const queues = new Map<string, DeliveryQueue>();
  const messages = new Map<string, MessageState>();
  /** `domain` or `domain/vmta` keys an operator paused. */
  const paused = new Set<string>();
  let totalQueued = 0;
  let closed = false;
  /** Attempts in progress, so close() can let them record their outcome. */
  const inflight = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };

  const isPaused = (q: DeliveryQueue) => paused.has(q.domain) || paused.has(q.key);

  function getQueue(route: Route, settings: DomainSettings): DeliveryQueue {
    let q = queues.get(route.key);
    if (!q) {
      q = new DeliveryQueue(route, settings);
      queues.set(route.key, q);
    }
    return q;
  }

  function deadline(msg: SpooledMessage, q: DeliveryQueue): number {
    return msg.receivedAt + q.settings.bounceAfter;
  }

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

  /** Counts finals, removes finished messages from memory and commits the attempt. */
  function finish(q: DeliveryQueue, job: Job, out: AttemptOutcome): void {
    const st = messages.get(job.msg.id);
    const finals = out.finalCount;
    q.depth -= finals;
    totalQueued -= finals;
    let done = false;
    if (st) {
      st.pending -= finals;
      if (st.pending <= 0) {
        messages.delete(job.msg.id);
        done = true;
      }
    }
    out.commit(done);
  }

  function defer(
    q: DeliveryQueue,
    job: Job,
    rcpts: number[],
    reply: string,
    code: number,
    out: AttemptOutcome,
  ): void {
    if (rcpts.length === 0) return;
    const t = now();
    let attempts = 0;
    for (const i of rcpts) attempts = Math.max(attempts, (job.msg.recipients[i]?.attempts ?? 0) + 1);
    const due = Math.min(t + q.retryDelay(attempts), deadline(job.msg, q));
    for (const i of rcpts) out.deferred(i, reply, code, due);
    q.deferred += rcpts.length;
    q.noteError(reply, t);
    q.retry.push({ ...job, rcpts, dueAt: due, skipMx: null });
    armRetry(q);
  }

  /** Bounces a job whose bounce-after has passed; true if it did. */
  function expireIfDue(q: DeliveryQueue, job: Job, t: number): boolean {
    if (t < deadline(job.msg, q)) return false;
    const out = new AttemptOutcome(deps, job.msg, placeFor(q, job, null), t);
    for (const i of job.rcpts) {
      const last = job.msg.recipients[i]?.lastDiag?.replace(/^smtp;/, '') ?? 'never attempted';
      out.failed(i, `550 5.4.7 delivery time expired (bounce-after); last error: ${last}`, 550, {
        category: 'message-expired',
        attempted: false,
      });
    }
    q.bounced += job.rcpts.length;
    finish(q, job, out);
    return true;
  }

  function wake(q: DeliveryQueue, at: number): void {
    if (q.wakeTimer && q.wakeAt <= at) return;
    if (q.wakeTimer) clearTimeout(q.wakeTimer);
    q.wakeAt = at;
    q.wakeTimer = setTimeout(
      () => {
        q.wakeTimer = null;
        pump(q);
      },
      Math.min(Math.max(at - now(), 0), MAX_TIMER),
    );
  }

  function armRetry(q: DeliveryQueue): void {
    const top = q.retry.peek();
    if (!top) return;
    if (q.retryTimer && q.retryTimerAt <= top.dueAt) return;
    if (q.retryTimer) clearTimeout(q.retryTimer);
    q.retryTimerAt = top.dueAt;
    q.retryTimer = setTimeout(
      () => {
        q.retryTimer = null;
        releaseDue(q);
      },
      Math.min(Math.max(top.dueAt - now(), 0), MAX_TIMER),
    );
  }

  function releaseDue(q: DeliveryQueue): void {
    if (closed) return;
    const t = now();
    for (let top = q.retry.peek(); top && top.dueAt <= t; top = q.retry.peek()) {
      const job = q.retry.pop() as Job;
      if (!expireIfDue(q, job, t)) q.ready.push(job);
    }
    armRetry(q);
    pump(q);
  }

  function takeIdle(q: DeliveryQueue): OutboundSession | null {
    for (let s = q.idle.pop(); s; s = q.idle.pop()) {
      const timer = q.idleTimers.get(s);
      if (timer) {
        clearTimeout(timer);
        q.idleTimers.delete(s);
      }
      if (!s.isClosed) return s;
    }
    return null;
  }

  function armIdleTimers(q: DeliveryQueue): void {
    for (const s of q.idle) {
      if (q.idleTimers.has(s)) continue;
      const timer = setTimeout(() => {
        q.idleTimers.delete(s);
        const i = q.idle.indexOf(s);
        if (i >= 0) q.idle.splice(i, 1);
        s.close();
      }, q.settings.connectionIdleTimeout);
      timer.unref();
      q.idleTimers.set(s, timer);
    }
  }

  function pump(q: DeliveryQueue): void {
    if (closed || isPaused(q)) return;
    const t = now();
    while (q.ready.length > 0) {
      const head = q.ready.peek() as Job;
      if (expireIfDue(q, head, t)) {
        q.ready.shift();
        continue;
      }
      const s = takeIdle(q);
      if (!s) {
        if (t < q.suspendedUntil) {
          wake(q, q.suspendedUntil);
          break;
        }
        if (q.openConnections() >= q.limits().maxSmtpOut) break;
        const wait = q.msgRate.take(t);
        if (wait > 0) {
          wake(q, t + wait);
          break;
        }
        const cwait = q.connectRate.take(t);
        if (cwait > 0) {
          q.msgRate.giveBack();
          wake(q, t + cwait);
          break;
        }
        track(openAndRun(q, q.ready.shift() as Job));
        continue;
      }
      const wait = q.msgRate.take(t);
      if (wait > 0) {
        q.idle.push(s);
        wake(q, t + wait);
        break;
      }
      track(run(q, s, q.ready.shift() as Job));
    }
    armIdleTimers(q);
  }

  async function openAndRun(q: DeliveryQueue, job: Job): Promise<void> {
    q.connecting++;
    q.inFlight += job.rcpts.length;
    let result: Awaited<ReturnType<typeof connect>>;
    try {
      result = await connect({
        resolver,
        route: q.route,
        settings: q.settings,
        mxDomain: job.mxDomain,
        port: config.global.remoteSmtpPort,
        timeouts,
        skipMx: job.skipMx,
        random,
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
    if (closed) {
      if (result.kind === 'session') result.session.close();
      return;
    }
    const t = now();
    if (result.kind === 'session') {
      q.connectFailures = 0;
      const s = result.session;
      q.sessions.add(s);
      s.onClose(() => {
        q.sessions.delete(s);
        const i = q.idle.indexOf(s);
        if (i >= 0) q.idle.splice(i, 1);
        const timer = q.idleTimers.get(s);
        if (timer) clearTimeout(timer);
        q.idleTimers.delete(s);
        pump(q);
      });
      await run(q, s, job);
      return;
    }
    if (result.kind === 'permanent') {
      const out = new AttemptOutcome(deps, job.msg, placeFor(q, job, null), t);
      for (const i of job.rcpts)
        out.failed(i, result.reply, result.code, { category: 'bad-domain', attempted: true });
      q.bounced += job.rcpts.length;
      q.noteError(result.reply, t);
      finish(q, job, out);
    } else if (result.remoteRefused && q.sessions.size > 0) {
      // The remote limits our connections; the open ones carry on with this job.
      q.ready.unshift({ ...job, skipMx: null });
      q.msgRate.giveBack();
      q.suspendedUntil = t + EXTRA_CONNECTION_BACKOFF;
      q.noteError(result.reply, t);
    } else {
      const out = new AttemptOutcome(deps, job.msg, placeFor(q, job, null), t);
      defer(q, job, job.rcpts, result.reply, result.code, out);
      finish(q, job, out);
      q.connectFailures++;
      q.suspendedUntil = t + q.retryDelay(q.connectFailures);
    }
    pump(q);
  }

  async function run(q: DeliveryQueue, s: OutboundSession, job: Job): Promise<void> {
    const msg = job.msg;
    q.inFlight += job.rcpts.length;
    let replies: RcptReply[];
    try {
      const body = deps.spool.openBody(msg) as Readable;
      replies = await s.send(
        {
          from: msg.sender,
          to: job.rcpts.map((i) => msg.recipients[i]?.rcpt ?? ''),
          size: msg.size,
          envId: msg.envId,
          ret: msg.ret,
        },
        body,
      );
    } catch (err) {
      log.error('cannot send spooled message', { id: msg.id, error: errorMessage(err) });
      replies = job.rcpts.map((_, index) => ({
        index,
        code: 451,
        reply: `451 4.3.0 local error: ${errorMessage(err)}`,
        remote: false,
      }));
    }
    q.inFlight -= job.rcpts.length;
    const t = now();
    const settings = q.settings;
    const all421 = replies.length > 0 && replies.every((r) => r.code === 421);
    if (all421 && settings.smtp421MeansMxUnavailable && !(job.skipMx?.has(s.opts.mxName) ?? false)) {
      // This MX is unavailable: try the job on the next MX at once, without counting an attempt.
      q.ready.unshift({ ...job, skipMx: new Set([...(job.skipMx ?? []), s.opts.mxName]) });
    } else {
      const out = new AttemptOutcome(deps, msg, placeFor(q, job, s), t);
      const deferred: number[] = [];
      let delivered = false;
      for (const r of replies) {
        const i = job.rcpts[r.index];
        if (i === undefined) continue;
        if (r.code >= 200 && r.code < 300) {
          out.delivered(i, r.reply, r.code);
          q.delivered++;
          delivered = true;
        } else if (r.code >= 500 && r.remote) {
          out.failed(i, r.reply, r.code, { attempted: true });
          q.bounced++;
          q.noteError(r.reply, t);
        } else deferred.push(i);
      }
      const firstDeferred = replies.find((r) => job.rcpts[r.index] === deferred[0]);
      if (firstDeferred) defer(q, job, deferred, firstDeferred.reply, firstDeferred.code, out);
      if (delivered) q.meter.add(t);
      finish(q, job, out);
    }
    const limit = settings.maxMsgPerConnection;
    if (s.isClosed || (limit > 0 && s.messagesSent >= limit) || closed) s.close();
    else q.idle.push(s);
    pump(q);
  }

  function enqueue(q: DeliveryQueue, job: Job, t: number): void {
    q.depth += job.rcpts.length;
    totalQueued += job.rcpts.length;
    if (job.dueAt <= t) q.ready.push(job);
    else {
      q.retry.push(job);
      armRetry(q);
    }
  }

  function submit(msg: SpooledMessage): void {
    if (closed) return;
    const t = now();
    const choices = new Map<string, VmtaChoice>();
    const groups = new Map<string, { q: DeliveryQueue; route: Route; due: number; rcpts: number[] }>();
    let suppressed: AttemptOutcome | null = null;
    let pending = 0;
    msg.recipients.forEach((r, i) => {
      if (r.state !== 'queued') return;
      if (deps.suppression.check(r.rcpt)) {
        suppressed ??= new AttemptOutcome(
          deps,
          msg,
          {
            queue: null,
            vmta: null,
            vmtaPool: null,
            sourceIp: null,
            destinationIp: null,
            mta: null,
            esmtp: null,
          },
          t,
        );
        suppressed.failed(i, '550 5.7.1 recipient is on the suppression list', 550, {
          category: 'policy-related',
          attempted: false,
        });
        return;
      }
      const domain = domainOf(r.rcpt);
      let choice = choices.get(domain);
      if (!choice) {
        choice = router.chooseVmta(domain, msg.vmtaRequest);
        choices.set(domain, choice);
      }
      const { route, settings } = router.route(domain, choice);
      const q = getQueue(route, settings);
      const due = r.nextAttemptAt;
      const key = `${route.key}\n${due}`;
      let g = groups.get(key);
      if (!g) {
        g = { q, route, due, rcpts: [] };
        groups.set(key, g);
      }
      g.rcpts.push(i);
      pending++;
    });
    if (pending > 0) messages.set(msg.id, { msg, pending });
    if (suppressed) (suppressed as AttemptOutcome).commit(pending === 0);
    const touched = new Set<DeliveryQueue>();
    for (const g of groups.values()) {
      const per = Math.max(1, g.q.settings.maxRcptPerMessage);
      for (let k = 0; k < g.rcpts.length; k += per) {
        const job: Job = {
          msg,
          rcpts: g.rcpts.slice(k, k + per),
          dueAt: g.due,
          mxDomain: g.route.mxDomain,
          vmtaPool: g.route.vmtaPool,
          skipMx: null,
        };
        enqueue(g.q, job, t);
      }
      touched.add(g.q);
    }
    for (const q of touched) pump(q);
  }

  function matching(domain: string, vmta?: string): DeliveryQueue[] {
    const d = domain.toLowerCase();
    return [...queues.values()].filter((q) => q.domain === d && (vmta === undefined || q.vmta === vmta));
  }

  function reconfigure(next: FreightConfig): void {
    config = next;
    router.reconfigure(next);
    for (const q of queues.values()) {
      q.apply(router.settings(q.domain, q.vmta));
      q.route = { ...q.route, ...routeIdentity(q.vmta) };
      pump(q);
    }
  }

  function routeIdentity(vmta: string): Pick<Route, 'sourceIp' | 'ehlo'> {
    if (vmta === DEFAULT_VMTA) return { sourceIp: null, ehlo: config.global.hostName };
    const info = router.vmtaInfo(vmta);
    return { sourceIp: info.sourceIp || null, ehlo: info.hostName };
  }

  const queueInfos = (): QueueInfo[] => {
    const t = now();
    return [...queues.values()].map((q) => queueInfo(q, isPaused(q), t));
  };

  return {
    submit,
    queuedRecipients: () => totalQueued,
    reconfigure,
    status: (): DeliveryStatus => deliveryStatus(queueInfos(), messages.size),
    queues: queueInfos,
    domains: (): DomainInfo[] => domainInfos(queueInfos()),
    vmtas: (): VmtaInfo[] => {
      const names = router.vmtaNames();
      if ([...queues.values()].some((q) => q.vmta === DEFAULT_VMTA)) names.push(DEFAULT_VMTA);
      return vmtaInfos(
        queueInfos(),
        names.map((name) => ({ name, ...router.vmtaInfo(name) })),
      );
    },
    pause(domain, vmta): QueueActionResult {
      const key = vmta ? `${domain.toLowerCase()}/${vmta}` : domain.toLowerCase();
      paused.add(key);
      return { queues: matching(domain, vmta).map((q) => q.key) };
    },
    resume(domain, vmta): QueueActionResult {
      const d = domain.toLowerCase();
      const hit = matching(domain, vmta);
      if (vmta) paused.delete(`${d}/${vmta}`);
      else {
        paused.delete(d);
        for (const q of hit) paused.delete(q.key);
      }
      for (const q of hit) pump(q);
      return { queues: hit.map((q) => q.key) };
    },
    schedule(domain): ScheduleResult {
      let rescheduled = 0;
      for (const q of matching(domain)) {
        for (const job of q.retry.drain()) {
          rescheduled += job.rcpts.length;
          q.ready.push({ ...job, dueAt: 0 });
        }
        if (q.retryTimer) clearTimeout(q.retryTimer);
        q.retryTimer = null;
        q.suspendedUntil = 0;
        pump(q);
      }
      return { domain: domain.toLowerCase(), rescheduled };
    },
    async close(): Promise<void> {
      closed = true;
      for (const q of queues.values()) {
        if (q.retryTimer) clearTimeout(q.retryTimer);
        if (q.wakeTimer) clearTimeout(q.wakeTimer);
        for (const timer of q.idleTimers.values()) clearTimeout(timer);
        q.idleTimers.clear();
        for (const s of q.idle.splice(0)) s.close();
      }
      // Transactions under way finish (and are accounted) unless the remote stalls them; their sessions
      // close when they do.
      const grace = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref());
      await Promise.race([Promise.allSettled([...inflight]), grace]);
      for (const q of queues.values()) for (const s of q.sessions) s.close();
    },
  };
}
