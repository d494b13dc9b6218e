/**
 * Drives each queue on its own (timers per queue, no global concurrency a stuck queue could exhaust):
 * starts attempts while max-smtp-out, max-msg-rate and max-connect-rate allow, reuses idle sessions,
 * releases retry jobs when due, and never sends from a disabled source IP or over a warm-up cap — such
 * work goes to another member of its pool, or waits. Attempts report back through AttemptEvents.
 */
import type { AttemptOutcome } from '../deliver/index.js';
import type { Attempts } from './attempt.js';
import type { AttemptEvents } from './attempt-env.js';
import type { DeliveryQueue, Job } from './queue.js';
import type { SchedulerState } from './state.js';

/** setTimeout's ceiling (~24.8 days). */
const MAX_TIMER = 2 ** 31 - 1;

export class QueuePump implements AttemptEvents {
  private readonly attempts: Attempts;

  constructor(
    private readonly st: SchedulerState,
    makeAttempts: (events: AttemptEvents) => Attempts,
  ) {
    this.attempts = makeAttempts(this);
  }

  stopping(): boolean {
    return this.st.closed;
  }

  /** Counts finals, removes finished messages from memory (and their DKIM body hash) and commits. */
  settled(q: DeliveryQueue, job: Job, out: AttemptOutcome): void {
    const st = this.st;
    const m = st.messages.get(job.msg.id);
    const finals = out.finalCount;
    q.depth -= finals;
    st.totalQueued -= finals;
    let done = false;
    if (m) {
      m.pending -= finals;
      if (m.pending <= 0) {
        st.messages.delete(job.msg.id);
        st.deliv.signer.forget(job.msg.id);
        done = true;
      }
    }
    out.commit(done);
  }

  changed(q: DeliveryQueue): void {
    this.armRetry(q);
    this.pump(q);
  }

  private track(p: Promise<void>): void {
    const inflight = this.st.inflight;
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  }

  private wake(q: DeliveryQueue, at: number): void {
    if (q.wakeTimer && q.wakeAt <= at) return;
    if (q.wakeTimer) clearTimeout(q.wakeTimer);
    q.wakeAt = at;
    q.wakeTimer = setTimeout(
      () => {
        q.wakeTimer = null;
        this.pump(q);
      },
      Math.min(Math.max(at - this.st.now(), 0), MAX_TIMER),
    );
  }

  armRetry(q: DeliveryQueue): void {
    const top = q.retry.peek();
    if (!top) return;
    if (q.retryTimer && q.retryTimerAt <= top.dueAt) return;
    if (q.retryTimer) clearTimeout(q.retryTimer);
    q.retryTimerAt = top.dueAt;
    q.retryTimer = setTimeout(
      () => {
        q.retryTimer = null;
        this.releaseDue(q);
      },
      Math.min(Math.max(top.dueAt - this.st.now(), 0), MAX_TIMER),
    );
  }

  private releaseDue(q: DeliveryQueue): void {
    if (this.st.closed) return;
    const t = this.st.now();
    const attempts = this.attempts;
    for (let top = q.retry.peek(); top && top.dueAt <= t; top = q.retry.peek()) {
      const job = q.retry.pop() as Job;
      if (!attempts.expireIfDue(q, job, t)) q.ready.push(job);
    }
    this.armRetry(q);
    this.pump(q);
  }

  /**
   * Moves every ready job of `q` that belongs to a pool to another member that may send now; jobs with
   * no such member (or no pool) stay and wait. True when the head of the queue moved.
   */
  private handOff(q: DeliveryQueue, touched: Set<DeliveryQueue>): boolean {
    const { router } = this.st;
    const head = q.ready.peek();
    const stay: Job[] = [];
    for (const job of q.ready.drain()) {
      const other = job.vmtaPool
        ? router.alternative(job.vmtaPool, q.vmta, this.st.usable(job.rcptDomain))
        : null;
      if (!other) {
        stay.push(job);
        continue;
      }
      const { route, settings } = router.route(job.rcptDomain, { vmta: other, pool: job.vmtaPool });
      const target = this.st.getQueue(route, settings);
      q.depth -= job.rcpts.length;
      target.depth += job.rcpts.length;
      target.ready.push({ ...job, mxDomain: route.mxDomain, skipMx: null });
      touched.add(target);
    }
    for (const job of stay) q.ready.push(job);
    return q.ready.peek() !== head;
  }

  pump(q: DeliveryQueue): void {
    const st = this.st;
    if (st.closed || q.paused) return;
    const { deliv } = st;
    const attempts = this.attempts;
    const t = st.now();
    const touched = new Set<DeliveryQueue>();
    q.apply(q.settings, st.limitsFor(q, q.settings));
    if (q.ready.length > 0 && deliv.reactor.isSourceDisabled(q.vmta, q.domain)) {
      // This source may not send here now: pool work moves on, the rest waits for re-enabling.
      this.handOff(q, touched);
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
        if (this.handOff(q, touched)) continue;
        break;
      }
      if (!this.startOne(q, t)) break;
    }
    for (const other of touched) this.pump(other);
  }

  /** Starts the head job on an idle session or a new connection; false when the limits say wait. */
  private startOne(q: DeliveryQueue, t: number): boolean {
    const s = q.takeIdle();
    if (!s) {
      if (t < q.suspendedUntil) {
        this.wake(q, q.suspendedUntil);
        return false;
      }
      if (q.openConnections() >= q.limits().maxSmtpOut) return false;
      const wait = q.msgRate.take(t);
      if (wait > 0) {
        this.wake(q, t + wait);
        return false;
      }
      const cwait = q.connectRate.take(t);
      if (cwait > 0) {
        q.msgRate.giveBack();
        this.wake(q, t + cwait);
        return false;
      }
      this.st.deliv.warmup.take(q.vmta, q.domain);
      this.track(this.attempts.openAndRun(q, q.ready.shift() as Job));
      return true;
    }
    const wait = q.msgRate.take(t);
    if (wait > 0) {
      q.parkIdle(s);
      this.wake(q, t + wait);
      return false;
    }
    this.st.deliv.warmup.take(q.vmta, q.domain);
    this.track(this.attempts.run(q, s, q.ready.shift() as Job));
    return true;
  }
}
