/**
 * Routing a submitted message into delivery jobs: each queued recipient goes to the queue of its
 * (domain, vmta) route, suppressed recipients fail at once, and the recipients of one route due at the
 * same time become jobs of at most max-rcpt-per-message each.
 */
import { AttemptOutcome, type OutcomePorts } from '../deliver/index.js';
import type { SpooledMessage } from '../types.js';
import type { QueuePump } from './pump.js';
import type { DeliveryQueue, Job } from './queue.js';
import { domainOf, type Route, type VmtaChoice } from './routing.js';
import type { SchedulerState } from './state.js';

/** Recipients of one message bound for one queue and due at one time. */
interface RcptGroup {
  q: DeliveryQueue;
  route: Route;
  rcptDomain: string;
  due: number;
  rcpts: number[];
}

const UNPLACED = {
  queue: null,
  vmta: null,
  vmtaPool: null,
  sourceIp: null,
  destinationIp: null,
  mta: null,
  esmtp: null,
} as const;

export function submitMessage(
  st: SchedulerState,
  pump: QueuePump,
  ports: OutcomePorts,
  msg: SpooledMessage,
): void {
  if (st.closed) return;
  const t = st.now();
  const { groups, pending, suppressed } = groupRecipients(st, ports, msg, t);
  if (pending > 0) st.messages.set(msg.id, { msg, pending });
  if (suppressed) suppressed.commit(pending === 0);
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
      if (st.enqueue(g.q, job, t)) pump.armRetry(g.q);
    }
    touched.add(g.q);
  }
  for (const q of touched) pump.pump(q);
}

/** The message's queued recipients by route and due time, and the outcome failing suppressed ones. */
function groupRecipients(
  st: SchedulerState,
  ports: OutcomePorts,
  msg: SpooledMessage,
  t: number,
): { groups: Map<string, RcptGroup>; pending: number; suppressed: AttemptOutcome | null } {
  const choices = new Map<string, VmtaChoice>();
  const groups = new Map<string, RcptGroup>();
  let suppressed: AttemptOutcome | null = null;
  let pending = 0;
  msg.recipients.forEach((r, i) => {
    if (r.state !== 'queued') return;
    if (ports.suppression.check(r.rcpt)) {
      suppressed ??= new AttemptOutcome(ports, msg, UNPLACED, t);
      suppressed.failed(i, '550 5.7.1 recipient is on the suppression list', 550, {
        category: 'policy-related',
        attempted: false,
      });
      return;
    }
    const domain = domainOf(r.rcpt);
    let choice = choices.get(domain);
    if (!choice) {
      choice = st.router.chooseVmta(domain, msg.vmtaRequest, st.usable(domain));
      choices.set(domain, choice);
    }
    const { route, settings } = st.router.route(domain, choice);
    const q = st.getQueue(route, settings);
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
  return { groups, pending, suppressed };
}
