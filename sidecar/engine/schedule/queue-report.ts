/**
 * Read-only views of the scheduler's queues for the control channel (`freight show queues|domains|
 * vmtas|status`). Computed on request by walking the queues, never the recipients.
 */

import type { DeliveryStatus, DomainInfo, QueueInfo, VmtaInfo } from '../control/index.js';
import type { DeliveryQueue } from './queue.js';

export function queueInfo(q: DeliveryQueue, paused: boolean, now: number): QueueInfo {
  return {
    domain: q.domain,
    vmta: q.vmta,
    depth: q.depth,
    inFlight: q.inFlight,
    connections: q.sessions.size,
    maxConnections: q.limits().maxSmtpOut,
    rate: q.meter.perMinute(now),
    mode: q.mode,
    paused,
    nextAttemptAt: q.nextAttemptAt(),
    lastError: q.lastError,
    lastErrorAt: q.lastErrorAt,
    delivered: q.delivered,
    bounced: q.bounced,
    deferred: q.deferred,
  };
}

export function domainInfos(infos: QueueInfo[]): DomainInfo[] {
  const byDomain = new Map<string, DomainInfo>();
  for (const q of infos) {
    let d = byDomain.get(q.domain);
    if (!d) {
      d = {
        domain: q.domain,
        queues: 0,
        depth: 0,
        inFlight: 0,
        connections: 0,
        rate: 0,
        paused: true,
        lastError: null,
        lastErrorAt: null,
        delivered: 0,
        bounced: 0,
        deferred: 0,
      };
      byDomain.set(q.domain, d);
    }
    d.queues++;
    d.depth += q.depth;
    d.inFlight += q.inFlight;
    d.connections += q.connections;
    d.rate += q.rate;
    d.paused &&= q.paused;
    if (q.lastErrorAt !== null && (d.lastErrorAt === null || q.lastErrorAt > d.lastErrorAt)) {
      d.lastError = q.lastError;
      d.lastErrorAt = q.lastErrorAt;
    }
    d.delivered += q.delivered;
    d.bounced += q.bounced;
    d.deferred += q.deferred;
  }
  return [...byDomain.values()].sort((a, b) => a.domain.localeCompare(b.domain));
}

export function vmtaInfos(
  infos: QueueInfo[],
  vmtas: Array<{
    name: string;
    sourceIp: string;
    hostName: string;
    disabled: boolean;
    disabledUntil: number | null;
  }>,
): VmtaInfo[] {
  const out = new Map<string, VmtaInfo>();
  for (const v of vmtas) {
    out.set(v.name, {
      name: v.name,
      sourceIp: v.sourceIp,
      hostName: v.hostName,
      queues: 0,
      depth: 0,
      connections: 0,
      rate: 0,
      disabled: v.disabled,
      disabledUntil: v.disabledUntil,
      delivered: 0,
      bounced: 0,
      deferred: 0,
    });
  }
  for (const q of infos) {
    const v = out.get(q.vmta);
    if (!v) continue;
    v.queues++;
    v.depth += q.depth;
    v.connections += q.connections;
    v.rate += q.rate;
    v.delivered += q.delivered;
    v.bounced += q.bounced;
    v.deferred += q.deferred;
  }
  return [...out.values()];
}

export function deliveryStatus(infos: QueueInfo[], queuedMessages: number): DeliveryStatus {
  const s: DeliveryStatus = {
    queuedMessages,
    queuedRecipients: 0,
    inFlight: 0,
    connections: 0,
    queues: infos.length,
    pausedQueues: 0,
    rate: 0,
    delivered: 0,
    bounced: 0,
    deferred: 0,
    lastError: null,
    lastErrorAt: null,
    lastErrorQueue: null,
  };
  for (const q of infos) {
    s.queuedRecipients += q.depth;
    s.inFlight += q.inFlight;
    s.connections += q.connections;
    if (q.paused) s.pausedQueues++;
    s.rate += q.rate;
    s.delivered += q.delivered;
    s.bounced += q.bounced;
    s.deferred += q.deferred;
    if (q.lastErrorAt !== null && (s.lastErrorAt === null || q.lastErrorAt > s.lastErrorAt)) {
      s.lastError = q.lastError;
      s.lastErrorAt = q.lastErrorAt;
      s.lastErrorQueue = `${q.domain}/${q.vmta}`;
    }
  }
  return s;
}
