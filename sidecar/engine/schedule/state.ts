/**
 * The scheduler's shared state, in one place: the config in force, the queues, the messages still in
 * memory and the counters over them. The scheduler's parts (submit, pump, attempts, queue control)
 * read and change it through this object; none of them keeps a copy of its own.
 */
import type { DomainSettings, FreightConfig } from '../../config/model.js';
import type { SpooledMessage } from '../types.js';
import type { EngineDeliverability } from './deliverability.js';
import { DeliveryQueue, type EffectiveLimits, type Job } from './queue.js';
import type { Route, Router } from './routing.js';

export interface MessageState {
  msg: SpooledMessage;
  /** Recipients not yet final. */
  pending: number;
}

export class SchedulerState {
  config: FreightConfig;
  readonly queues = new Map<string, DeliveryQueue>();
  readonly messages = new Map<string, MessageState>();
  totalQueued = 0;
  closed = false;
  /** Attempts in progress, so close() can let them record their outcome. */
  readonly inflight = new Set<Promise<void>>();
  /** Whether a queue created now starts paused (the operator's pauses, set by queue control). */
  pausedAtBirth: (q: DeliveryQueue) => boolean = () => false;

  constructor(
    config: FreightConfig,
    readonly now: () => number,
    readonly random: () => number,
    readonly deliv: EngineDeliverability,
    readonly router: Router,
  ) {
    this.config = config;
  }

  limitsFor(q: { domain: string; vmta: string }, settings: DomainSettings): EffectiveLimits {
    return this.deliv.effective(q.domain, q.vmta, settings);
  }

  getQueue(route: Route, settings: DomainSettings): DeliveryQueue {
    let q = this.queues.get(route.key);
    if (!q) {
      q = new DeliveryQueue(
        route,
        settings,
        this.limitsFor({ domain: route.queueDomain, vmta: route.vmta }, settings),
      );
      q.paused = this.pausedAtBirth(q);
      this.queues.set(route.key, q);
    }
    return q;
  }

  /** Whether `vmta` may send to the queue domain `rcptDomain` routes to (warm-up caps, source blocks). */
  usable(rcptDomain: string): (vmta: string) => boolean {
    return (vmta) =>
      this.deliv.canUse(vmta, this.router.route(rcptDomain, { vmta, pool: null }).route.queueDomain);
  }

  /** Counts a new job in and puts it where it waits: ready now, or in the retry heap. */
  enqueue(q: DeliveryQueue, job: Job, t: number): boolean {
    q.depth += job.rcpts.length;
    this.totalQueued += job.rcpts.length;
    if (job.dueAt <= t) {
      q.ready.push(job);
      return false;
    }
    q.retry.push(job);
    return true;
  }
}
