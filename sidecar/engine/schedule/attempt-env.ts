/**
 * What attempts work with and how they report back: the narrow interface between the pump, which
 * starts attempts, and the attempts, which never call into the pump's internals.
 */
import type { FreightConfig } from '../../config/model.js';
import type { DnsResolver } from '../../dns/resolver.js';
import type { AttemptOutcome, OutcomePorts, SessionTimeouts } from '../deliver/index.js';
import type { EngineDeliverability } from './deliverability.js';
import type { DeliveryQueue, Job } from './queue.js';

/** How an attempt tells the scheduler what it did; the scheduler decides what happens next. */
export interface AttemptEvents {
  /** The job's outcome is complete: count its final recipients, forget finished messages, commit. */
  settled(q: DeliveryQueue, job: Job, out: AttemptOutcome): void;
  /** The queue's jobs, heaps or sessions changed (an attempt ended, a session closed). */
  changed(q: DeliveryQueue): void;
  /** True once the scheduler is closing: results are dropped, sessions closed. */
  stopping(): boolean;
}

/** What attempts work with: the engine's ports and clock, and where they report. */
export interface AttemptEnv {
  ports: OutcomePorts;
  config(): FreightConfig;
  resolver: DnsResolver;
  timeouts: SessionTimeouts;
  now(): number;
  random(): number;
  deliv: EngineDeliverability;
  events: AttemptEvents;
}
