/**
 * The delivery half of the engine: routes submitted recipients into per-(domain, vmta) queues and
 * drives each queue on its own (timers per queue, no global concurrency a stuck queue could exhaust):
 * max-smtp-out, max-msg-rate, max-connect-rate, max-msg-per-connection, max-rcpt-per-message,
 * retry-after, bounce-after, pause/resume, connection reuse and idle close — under the limits the
 * deliverability state puts in force (backoff, rate cuts), never from a disabled source IP and never
 * over a warm-up cap: such work goes to another member of its pool, or waits. Implements EngineControl;
 * what one attempt does with its replies is attempt.ts.
 */
import { errorMessage } from '../../common/errors.js';
import { createLogger } from '../../common/log.js';
import type { DomainSettings, FreightConfig } from '../../config/model.js';
import type { DeliverabilityEvent } from '../../deliverability/events.js';
import { createDnsResolver, type DnsResolver } from '../../dns/resolver.js';
import type { EngineControl } from '../control/protocol.js';
import { createQueueControl } from '../control/queue-control.js';
import { createAttempts } from '../deliver/attempt.js';
import { DEFAULT_TIMEOUTS, type SessionTimeouts } from '../deliver/connector.js';
import { AttemptOutcome, type OutcomePorts } from '../deliver/outcome.js';
import type { SchedulerPort, SpooledMessage } from '../types.js';
import { type DeliverabilityOptions, EngineDeliverability } from './deliverability.js';
import { DeliveryQueue, type EffectiveLimits, type Job } from './queue.js';
import { DEFAULT_VMTA, domainOf, type Route, Router, type VmtaChoice } from './routing.js';

const log = createLogger('engine/scheduler');

/** setTimeout's ceiling (~24.8 days). */
const MAX_TIMER = 2 ** 31 - 1;

export interface SchedulerDeps extends OutcomePorts {
  config: FreightConfig;
  /** Default: a dns2 resolver against config.global.dnsServer. */
  resolver?: DnsResolver;
  timeouts?: Partial<SessionTimeouts>;
  now?: () => number;
  random?: () => number;
  /** Clock, crons, DNSBL lookup and warm-up state file of the deliverability state. */
  deliverability?: DeliverabilityOptions;
}

export interface Scheduler extends SchedulerPort, EngineControl {
  /**
   * Apply a new config: queues keep their mail and sessions; new limits apply from now on. Throws (and
   * changes nothing) when the deliverability part of the config cannot be applied (e.g. a bad DKIM key).
   */
  reconfigure(config: FreightConfig): void;
  /** Close every session and timer, save warm-up state. Queued mail stays in the spool for the next start. */
  close(): Promise<void>;
}

interface MessageState {
  msg: SpooledMessage;
  pending: number;
}

export function createScheduler(deps: SchedulerDeps): Scheduler {
  let config = deps.config;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const timeouts: SessionTimeouts = { ...DEFAULT_TIMEOUTS, ...deps.timeouts };
  const resolver = deps.resolver ?? createDnsResolver({ server: config.global.dnsServer });
  const deliv = new EngineDeliverability(config, deps.acct, deps.deliverability);
  const router = new Router(config);
  const queues = new Map<string, DeliveryQueue>();
  const messages = new Map<string, MessageState>();
  let totalQueued = 0;
  let closed = false;
  /** Attempts in progress, so close() can let them record their outcome. */
  const inflight = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };

  const attempts = createAttempts({
    ports: deps,
    config: () => config,
    resolver,
    timeouts,
    now,
    random,
    closed: () => closed,
    deliv,
    pump,
    armRetry,
    settle,
  });

  function limitsFor(q: { domain: string; vmta: string }, settings: DomainSettings): EffectiveLimits {
    return deliv.effective(q.domain, q.vmta, settings);
  }

  function getQueue(route: Route, settings: DomainSettings): DeliveryQueue {
    let q = queues.get(route.key);
    if (!q) {
      q = new DeliveryQueue(
        route,
        settings,
        limitsFor({ domain: route.queueDomain, vmta: route.vmta }, settings),
      );
      q.paused = control.pausedAtBirth(q);
      queues.set(route.key, q);
    }
    return q;
  }

  /** Counts finals, removes finished messages from memory (and their DKIM body hash) and commits. */
  function settle(q: DeliveryQueue, job: Job, out: AttemptOutcome): void {
    const st = messages.get(job.msg.id);
    const finals = out.finalCount;
    q.depth -= finals;
    totalQueued -= finals;
    let done = false;
    if (st) {
      st.pending -= finals;
      if (st.pending <= 0) {
        messages.delete(job.msg.id);
        deliv.signer.forget(job.msg.id);
        done = true;
      }
    }
    out.commit(done);
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
      if (!attempts.expireIfDue(q, job, t)) q.ready.push(job);
    }
    armRetry(q);
    pump(q);
  }

  /** Queue domain a (recipient domain, vmta) routes to: the key warm-up caps and source blocks use. */
  const usable = (rcptDomain: string) => (vmta: string) =>
    deliv.canUse(vmta, router.route(rcptDomain, { vmta, pool: null }).route.queueDomain);

  /**
   * Moves every ready job of `q` that belongs to a pool to another member that may send now; jobs with
   * no such member (or no pool) stay and wait. True when the head of the queue moved.
   */
  function handOff(q: DeliveryQueue, touched: Set<DeliveryQueue>): boolean {
    const head = q.ready.peek();
    const stay: Job[] = [];
    for (const job of q.ready.drain()) {
      const other = job.vmtaPool ? router.alternative(job.vmtaPool, q.vmta, usable(job.rcptDomain)) : null;
      if (!other) {
        stay.push(job);
        continue;
      }
      const { route, settings } = router.route(job.rcptDomain, { vmta: other, pool: job.vmtaPool });
      const target = getQueue(route, settings);
      q.depth -= job.rcpts.length;
      target.depth += job.rcpts.length;
      target.ready.push({ ...job, mxDomain: route.mxDomain, skipMx: null });
      touched.add(target);
    }
    for (const job of stay) q.ready.push(job);
    return q.ready.peek() !== head;
  }

  function pump(q: DeliveryQueue): void {
    if (closed || q.paused) return;
    const t = now();
    const touched = new Set<DeliveryQueue>();
    q.apply(q.settings, limitsFor(q, q.settings));
    if (q.ready.length > 0 && deliv.reactor.isSourceDisabled(q.vmta, q.domain)) {
      // This source may not send here now: pool work moves on, the rest waits for re-enabling.
      handOff(q, touched);
      q.closeIdle();
    }
    while (q.ready.length > 0 && !deliv.reactor.isSourceDisabled(q.vmta, q.domain)) {
      const head = q.ready.peek() as Job;
      if (attempts.expireIfDue(q, head, t)) {
        q.ready.shift();
        continue;
      }
      if (deliv.warmup.remaining(q.vmta, q.domain) <= 0) {
        // Over today's warm-up cap: another pool member takes it, or it waits for the next warm-up day.
        if (handOff(q, touched)) continue;
        break;
      }
      const s = q.takeIdle();
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
        deliv.warmup.take(q.vmta, q.domain);
        track(attempts.openAndRun(q, q.ready.shift() as Job));
        continue;
      }
      const wait = q.msgRate.take(t);
      if (wait > 0) {
        q.parkIdle(s);
        wake(q, t + wait);
        break;
      }
      deliv.warmup.take(q.vmta, q.domain);
      track(attempts.run(q, s, q.ready.shift() as Job));
    }
    for (const other of touched) pump(other);
  }

  /** A deliverability change (mode, rate cut, source disabled or enabled, warm-up day): re-pump its queues. */
  let eventPumps: Set<DeliveryQueue> | null = null;
  deliv.onEvent((e: DeliverabilityEvent) => {
    const hit = [...queues.values()].filter(
      (q) => q.vmta === e.vmta && (e.domain === '*' || q.domain === e.domain.toLowerCase()),
    );
    if (hit.length === 0) return;
    // Events fire inside reply handling; the queues are pumped once that attempt has finished.
    if (!eventPumps) {
      eventPumps = new Set();
      setImmediate(() => {
        const due = eventPumps ?? new Set<DeliveryQueue>();
        eventPumps = null;
        for (const q of due) pump(q);
      });
    }
    for (const q of hit) eventPumps.add(q);
  });

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
    const groups = new Map<
      string,
      { q: DeliveryQueue; route: Route; rcptDomain: string; due: number; rcpts: number[] }
    >();
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
        choice = router.chooseVmta(domain, msg.vmtaRequest, usable(domain));
        choices.set(domain, choice);
      }
      const { route, settings } = router.route(domain, choice);
      const q = getQueue(route, settings);
      const due = r.nextAttemptAt;
      const key = `${route.key}\n${domain}\n${due}`;
      let g = groups.get(key);
      if (!g) {
        g = { q, route, rcptDomain: domain, due, rcpts: [] };
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
          rcptDomain: g.rcptDomain,
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

  function reconfigure(next: FreightConfig): void {
    deliv.reconfigure(next);
    config = next;
    router.reconfigure(next);
    for (const q of queues.values()) {
      const settings = router.settings(q.domain, q.vmta);
      q.apply(settings, limitsFor(q, settings));
      q.route = { ...q.route, ...routeIdentity(q.vmta) };
      pump(q);
    }
  }

  function routeIdentity(vmta: string): Pick<Route, 'sourceIp' | 'ehlo'> {
    if (vmta === DEFAULT_VMTA) return { sourceIp: null, ehlo: config.global.hostName };
    const info = router.vmtaInfo(vmta);
    return { sourceIp: info.sourceIp || null, ehlo: info.hostName };
  }

  const control = createQueueControl({
    queues,
    pump,
    now,
    router,
    deliv,
    queuedMessages: () => messages.size,
  });

  return {
    submit,
    queuedRecipients: () => totalQueued,
    reconfigure,
    ...control,
    async close(): Promise<void> {
      closed = true;
      for (const q of queues.values()) {
        if (q.retryTimer) clearTimeout(q.retryTimer);
        if (q.wakeTimer) clearTimeout(q.wakeTimer);
        q.closeIdle();
      }
      // Transactions under way finish (and are accounted) unless the remote stalls them; their sessions
      // close when they do.
      const grace = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref());
      await Promise.race([Promise.allSettled([...inflight]), grace]);
      for (const q of queues.values()) for (const s of q.sessions) s.close();
      // After the attempts above: their outcomes count in the saved warm-up state.
      try {
        deliv.close();
      } catch (err) {
        log.error('cannot stop deliverability state cleanly', { error: errorMessage(err) });
      }
    },
  };
}
