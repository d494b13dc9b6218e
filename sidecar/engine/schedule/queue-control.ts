/**
 * The operator's view and hands on the scheduler's queues (EngineControl): show status, queues, domains
 * and vmtas (with the deliverability state: queue mode, disabled sources), pause/resume and schedule.
 *
 * Pause semantics: `pause(domain)` sets the paused flag on every queue of the domain, and on queues the
 * domain gets later; `pause(domain, vmta)` on that one queue. `resume(domain, vmta)` clears that queue's
 * flag, even under a domain pause (its mail flows again; the domain's other queues stay paused);
 * `resume(domain)` clears every flag of the domain.
 */

import type {
  DeliveryStatus,
  DomainInfo,
  EngineControl,
  QueueActionResult,
  QueueInfo,
  ScheduleResult,
  VmtaInfo,
} from '../control/index.js';
import type { DeliveryQueue } from './queue.js';
import { deliveryStatus, domainInfos, queueInfo, vmtaInfos } from './queue-report.js';
import { DEFAULT_VMTA } from './routing.js';
import type { SchedulerState } from './state.js';

export interface QueueControl extends EngineControl {
  /** Whether a queue created now starts paused. */
  pausedAtBirth(q: DeliveryQueue): boolean;
}

export function createQueueControl(ctx: { st: SchedulerState; pump(q: DeliveryQueue): void }): QueueControl {
  const { st, pump } = ctx;
  const { queues, now, router, deliv } = st;
  const pausedDomains = new Set<string>();
  const pausedQueues = new Set<string>();

  function matching(domain: string, vmta?: string): DeliveryQueue[] {
    const d = domain.toLowerCase();
    return [...queues.values()].filter((q) => q.domain === d && (vmta === undefined || q.vmta === vmta));
  }

  const queueInfos = (): QueueInfo[] => {
    const t = now();
    return [...queues.values()].map((q) => queueInfo(q, q.paused, t));
  };

  return {
    pausedAtBirth: (q) => pausedDomains.has(q.domain) || pausedQueues.has(q.key),
    status: (): DeliveryStatus => deliveryStatus(queueInfos(), st.messages.size),
    queues: queueInfos,
    domains: (): DomainInfo[] => domainInfos(queueInfos()),
    vmtas: (): VmtaInfo[] => {
      const names = router.vmtaNames();
      if ([...queues.values()].some((q) => q.vmta === DEFAULT_VMTA)) names.push(DEFAULT_VMTA);
      const disabled = new Set(deliv.reactor.sources.list().map((e) => e.vmta));
      return vmtaInfos(
        queueInfos(),
        names.map((name) => ({
          name,
          ...router.vmtaInfo(name),
          disabled: disabled.has(name),
          disabledUntil: disabled.has(name) ? deliv.reactor.sources.disabledUntil(name) : null,
        })),
      );
    },
    pause(domain, vmta): QueueActionResult {
      const d = domain.toLowerCase();
      if (vmta) pausedQueues.add(`${d}/${vmta}`);
      else pausedDomains.add(d);
      const hit = matching(d, vmta);
      for (const q of hit) q.paused = true;
      return { queues: hit.map((q) => q.key) };
    },
    resume(domain, vmta): QueueActionResult {
      const d = domain.toLowerCase();
      const hit = matching(d, vmta);
      if (vmta) pausedQueues.delete(`${d}/${vmta}`);
      else {
        pausedDomains.delete(d);
        for (const k of [...pausedQueues]) if (k.startsWith(`${d}/`)) pausedQueues.delete(k);
      }
      for (const q of hit) {
        q.paused = false;
        pump(q);
      }
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
  };
}
