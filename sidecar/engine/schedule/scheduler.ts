/**
 * The delivery half of the engine, assembled: the shared state (state.ts), routing of submitted mail
 * into per-(domain, vmta) queues (submit.ts), the per-queue pump (pump.ts), the attempts it starts
 * (attempt.ts) and the operator's controls (queue-control.ts); here, reconfiguration, deliverability
 * events and close. Limits, retry and bounce-after are the queue's; backoff, rate cuts, disabled
 * sources and warm-up caps the deliverability state's.
 */
import { errorMessage } from '../../common/errors.js';
import { createLogger } from '../../common/log.js';
import type { FreightConfig } from '../../config/model.js';
import type { DeliverabilityEvent } from '../../deliverability/events.js';
import { createDnsResolver, type DnsResolver } from '../../dns/resolver.js';
import type { EngineControl } from '../control/index.js';
import { DEFAULT_TIMEOUTS, type OutcomePorts, type SessionTimeouts } from '../deliver/index.js';
import type { SchedulerPort } from '../types.js';
import { Attempts } from './attempt.js';
import { type DeliverabilityOptions, EngineDeliverability } from './deliverability.js';
import { QueuePump } from './pump.js';
import type { DeliveryQueue } from './queue.js';
import { createQueueControl } from './queue-control.js';
import { DEFAULT_VMTA, type Route, Router } from './routing.js';
import { SchedulerState } from './state.js';
import { submitMessage } from './submit.js';

const log = createLogger('engine/scheduler');

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

export function createScheduler(deps: SchedulerDeps): Scheduler {
  const config = deps.config;
  const deliv = new EngineDeliverability(config, deps.acct, deps.deliverability);
  const st = new SchedulerState(
    config,
    deps.now ?? Date.now,
    deps.random ?? Math.random,
    deliv,
    new Router(config),
  );
  const resolver = deps.resolver ?? createDnsResolver({ server: config.global.dnsServer });
  const timeouts: SessionTimeouts = { ...DEFAULT_TIMEOUTS, ...deps.timeouts };
  const pump = new QueuePump(
    st,
    (events) =>
      new Attempts({
        ports: deps,
        config: () => st.config,
        resolver,
        timeouts,
        now: st.now,
        random: st.random,
        deliv,
        events,
      }),
  );
  const pumpQueue = (q: DeliveryQueue) => pump.pump(q);
  deliv.onEvent(repumpOnEvent(st, pumpQueue));
  const control = createQueueControl({ st, pump: pumpQueue });
  st.pausedAtBirth = control.pausedAtBirth;
  return {
    submit: (msg) => submitMessage(st, pump, deps, msg),
    queuedRecipients: () => st.totalQueued,
    reconfigure: (next) => reconfigure(st, next, pumpQueue),
    ...control,
    close: () => closeScheduler(st),
  };
}

/** A deliverability change (mode, rate cut, source disabled or enabled, warm-up day): re-pump its queues. */
function repumpOnEvent(
  st: SchedulerState,
  pump: (q: DeliveryQueue) => void,
): (e: DeliverabilityEvent) => void {
  let eventPumps: Set<DeliveryQueue> | null = null;
  return (e) => {
    const hit = [...st.queues.values()].filter(
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
  };
}

function reconfigure(st: SchedulerState, next: FreightConfig, pump: (q: DeliveryQueue) => void): void {
  st.deliv.reconfigure(next);
  st.config = next;
  st.router.reconfigure(next);
  for (const q of st.queues.values()) {
    const settings = st.router.settings(q.domain, q.vmta);
    q.apply(settings, st.limitsFor(q, settings));
    q.route = { ...q.route, ...routeIdentity(st, q.vmta) };
    pump(q);
  }
}

function routeIdentity(st: SchedulerState, vmta: string): Pick<Route, 'sourceIp' | 'ehlo'> {
  if (vmta === DEFAULT_VMTA) return { sourceIp: null, ehlo: st.config.global.hostName };
  const info = st.router.vmtaInfo(vmta);
  return { sourceIp: info.sourceIp || null, ehlo: info.hostName };
}

async function closeScheduler(st: SchedulerState): Promise<void> {
  st.closed = true;
  for (const q of st.queues.values()) {
    if (q.retryTimer) clearTimeout(q.retryTimer);
    if (q.wakeTimer) clearTimeout(q.wakeTimer);
    q.closeIdle();
  }
  // Transactions under way finish (and are accounted) unless the remote stalls them; their sessions
  // close when they do.
  const grace = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref());
  await Promise.race([Promise.allSettled([...st.inflight]), grace]);
  for (const q of st.queues.values()) for (const s of q.sessions) s.close();
  // After the attempts above: their outcomes count in the saved warm-up state.
  try {
    st.deliv.close();
  } catch (err) {
    log.error('cannot stop deliverability state cleanly', { error: errorMessage(err) });
  }
}
