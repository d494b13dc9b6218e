/**
 * `/metrics` in Prometheus text format. Nothing is polled in the background: each scrape takes one
 * snapshot of the engine, policy daemon, tailer position and ramp shares, and every metric's `collect()`
 * fills itself from that snapshot. Scrapes are serialised so two concurrent ones never mix values.
 *
 * Labels are bounded by what the operator configured: queues are (domain, vmta) after mx-rollup, limits
 * are `<policy-limit>` names, ramp domains are the ramped ones. Per-queue `_total` counters are the
 * engine's totals since it started (monotonic; they restart at 0 with the engine, which Prometheus's
 * rate() treats as a counter reset).
 */
import { type Metric, Registry } from 'prom-client';
import type { EngineStatusReport, QueueInfo, VmtaInfo } from '../engine/control/protocol.js';
import type { PolicyStats } from '../policy/stats.js';
import type { RampShare } from '../ramp/state.js';
import type { Backends, TailerLag } from './clients.js';

interface Snapshot {
  engine: { status: EngineStatusReport; queues: QueueInfo[]; vmtas: VmtaInfo[] } | null;
  policy: PolicyStats | null;
  tailer: TailerLag | null;
  acctQuarantined: number | null;
  ramp: RampShare[] | null;
  running: { ramp: boolean; tailer: boolean };
}

/** Adds one sample (labels → value) for the current scrape. */
type Fill = (put: (labels: Record<string, string>, value: number) => void, s: Snapshot) => void;

const QUEUE_MODES = ['normal', 'backoff'] as const;
/** Control sockets answer in milliseconds; a scrape must not hang on a stuck daemon. */
const SCRAPE_TIMEOUT_MS = 3000;

async function orNull<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch {
    return null;
  }
}

export class MetricsCollector {
  readonly registry = new Registry();
  private current: Promise<Snapshot> | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly backends: Backends) {
    this.define();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One scrape: take the snapshot, then let every metric's collect() read it. */
  render(): Promise<string> {
    const run = this.chain.then(() => {
      this.current = this.snapshot();
      return this.registry.metrics();
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async snapshot(): Promise<Snapshot> {
    const b = this.backends;
    const [status, queues, vmtas, policy] = await Promise.all([
      orNull(b.engine<EngineStatusReport>({ op: 'status' }, SCRAPE_TIMEOUT_MS)),
      orNull(b.engine<QueueInfo[]>({ op: 'queues' }, SCRAPE_TIMEOUT_MS)),
      orNull(b.engine<VmtaInfo[]>({ op: 'vmtas' }, SCRAPE_TIMEOUT_MS)),
      orNull(b.policyStats(SCRAPE_TIMEOUT_MS)),
    ]);
    let tailer: TailerLag | null = null;
    let acctQuarantined: number | null = null;
    let ramp: RampShare[] | null = null;
    try {
      tailer = b.tailerLag();
    } catch {
      tailer = null;
    }
    try {
      acctQuarantined = b.acctQuarantined();
    } catch {
      acctQuarantined = null;
    }
    try {
      ramp = b.rampState().shares();
    } catch {
      ramp = null;
    }
    return {
      engine: status && queues && vmtas ? { status, queues, vmtas } : null,
      policy,
      tailer,
      acctQuarantined,
      ramp,
      running: { ramp: b.daemonRunning('ramp'), tailer: b.daemonRunning('tailer') },
    };
  }

  private define(): void {
    const snap = () => this.current as Promise<Snapshot>;
    const add = (type: 'gauge' | 'counter') => (name: string, help: string, fill: Fill) =>
      this.registry.registerMetric(new SnapshotMetric(name, help, type, snap, fill) as unknown as Metric);
    const family: Family = { gauge: add('gauge'), counter: add('counter') };
    for (const define of FAMILIES) define(family);
  }
}

/** Registers a metric of the family; its samples come from `fill` at each scrape. */
interface Family {
  gauge(name: string, help: string, fill: Fill): void;
  counter(name: string, help: string, fill: Fill): void;
}

function upMetrics({ gauge }: Family): void {
  gauge(
    'freight_up',
    '1 if the daemon answers (engine, policy: control socket; ramp, tailer: live pid file)',
    (put, s) => {
      put({ daemon: 'api' }, 1);
      put({ daemon: 'engine' }, s.engine ? 1 : 0);
      put({ daemon: 'policy' }, s.policy ? 1 : 0);
      put({ daemon: 'ramp' }, s.running.ramp ? 1 : 0);
      put({ daemon: 'tailer' }, s.running.tailer ? 1 : 0);
    },
  );
}

/** One sample per (domain, vmta) queue. */
function perQueue(value: (q: QueueInfo) => number): Fill {
  return (put, s) => {
    for (const q of s.engine?.queues ?? []) put({ domain: q.domain, vmta: q.vmta }, value(q));
  };
}

function queueGauges({ gauge }: Family): void {
  gauge(
    'freight_queue_depth',
    'Recipients waiting in the queue, including those in flight',
    perQueue((q) => q.depth),
  );
  gauge(
    'freight_queue_in_flight',
    'Recipients in an open SMTP transaction',
    perQueue((q) => q.inFlight),
  );
  gauge(
    'freight_queue_connections',
    'Open SMTP connections of the queue',
    perQueue((q) => q.connections),
  );
  gauge(
    'freight_queue_max_connections',
    'Effective max-smtp-out of the queue',
    perQueue((q) => q.maxConnections),
  );
  gauge(
    'freight_queue_paused',
    '1 if an operator paused the queue',
    perQueue((q) => (q.paused ? 1 : 0)),
  );
  gauge(
    'freight_queue_rate_per_minute',
    'Messages delivered over the last minute',
    perQueue((q) => q.rate),
  );
  gauge(
    'freight_queue_mode',
    '1 for the queue’s current mode (normal or backoff), 0 for the others',
    (put, s) => {
      for (const q of s.engine?.queues ?? []) {
        for (const mode of QUEUE_MODES)
          put({ domain: q.domain, vmta: q.vmta, mode }, q.mode === mode ? 1 : 0);
      }
    },
  );
}

function queueCounters({ counter }: Family): void {
  counter(
    'freight_queue_delivered_total',
    'Recipients delivered since the engine started',
    perQueue((q) => q.delivered),
  );
  counter(
    'freight_queue_deferred_total',
    'Transient failures (deferrals) since the engine started',
    perQueue((q) => q.deferred),
  );
  counter(
    'freight_queue_bounced_total',
    'Recipients bounced since the engine started',
    perQueue((q) => q.bounced),
  );
}

function vmtaMetrics({ gauge }: Family): void {
  gauge(
    'freight_vmta_disabled',
    '1 while a pattern rule has disabled the virtual MTA’s source IP',
    (put, s) => {
      for (const v of s.engine?.vmtas ?? []) put({ vmta: v.name }, v.disabled ? 1 : 0);
    },
  );
}

/** One unlabelled sample from the engine's status report. */
function fromStatus(value: (r: EngineStatusReport) => number): Fill {
  return (put, s) => {
    if (s.engine) put({}, value(s.engine.status));
  };
}

function engineMetrics({ gauge }: Family): void {
  gauge(
    'freight_engine_queued_recipients',
    'Recipients held by the engine, not yet final',
    fromStatus((r) => r.delivery.queuedRecipients),
  );
  gauge(
    'freight_engine_queued_messages',
    'Messages held by the engine, not yet final',
    fromStatus((r) => r.delivery.queuedMessages),
  );
  gauge(
    'freight_engine_connections',
    'Open outbound SMTP connections',
    fromStatus((r) => r.delivery.connections),
  );
  gauge(
    'freight_engine_intake_sessions',
    'Open intake (LMTP/SMTP) sessions from Postfix',
    fromStatus((r) => r.intake.sessions),
  );
  gauge(
    'freight_engine_intake_refusing',
    '1 while intake answers 452 (disk or saturation back-pressure)',
    fromStatus((r) => (r.intake.refusing ? 1 : 0)),
  );
  gauge(
    'freight_engine_spool_free_bytes',
    'Free bytes on the spool file system',
    fromStatus((r) => r.spool.freeBytes),
  );
  gauge(
    'freight_engine_spool_data_bytes',
    'Bytes in the spool data segments (message bodies, live and not yet compacted)',
    fromStatus((r) => r.spool.dataBytes),
  );
}

function policyMetrics({ gauge, counter }: Family): void {
  counter(
    'freight_policy_decisions_total',
    'Policy decisions since the policy daemon started, by outcome',
    (put, s) => {
      const d = s.policy?.decisions;
      if (!d) return;
      put({ action: 'permitted' }, d.permitted);
      put({ action: 'limited' }, d.limited);
      put({ action: 'suppressed' }, d.suppressed);
      put({ action: 'store_unavailable' }, d.storeUnavailable);
    },
  );
  gauge(
    'freight_policy_limit_rejected',
    'Requests refused per <policy-limit>, summed over its most-limited keys (top 50; swept keys drop out)',
    (put, s) => {
      if (!s.policy) return;
      const byLimit = new Map<string, number>();
      for (const l of s.policy.limits) byLimit.set(l.name, 0);
      for (const k of s.policy.mostLimited) byLimit.set(k.limit, (byLimit.get(k.limit) ?? 0) + k.rejected);
      const action = new Map(s.policy.limits.map((l) => [l.name, l.action]));
      for (const [limit, n] of byLimit) put({ limit, action: action.get(limit) ?? '' }, n);
    },
  );
  gauge(
    'freight_policy_connections',
    'Open connections from Postfix smtpd to the policy daemon',
    (put, s) => {
      if (s.policy) put({}, s.policy.connections.open);
    },
  );
}

function tailerAndAcctMetrics({ gauge }: Family): void {
  gauge('freight_tailer_lag_bytes', 'Maillog bytes not yet committed to accounting', (put, s) => {
    if (s.tailer) put({}, s.tailer.bytes);
  });
  gauge(
    'freight_tailer_lag_seconds',
    'Seconds since the tailer last committed while maillog bytes wait (0 = caught up)',
    (put, s) => {
      if (s.tailer) put({}, s.tailer.seconds);
    },
  );
  gauge(
    'freight_acct_quarantined_rows',
    'Accounting rows no writer could store (constraint, bad value), kept in acct_quarantine',
    (put, s) => {
      if (s.acctQuarantined !== null) put({}, s.acctQuarantined);
    },
  );
}

function rampMetrics({ gauge }: Family): void {
  gauge(
    'freight_ramp_share_percent',
    'Share of a ramped domain’s recipients routed to the engine',
    (put, s) => {
      for (const r of s.ramp ?? []) put({ domain: r.domain }, r.percent);
    },
  );
}

/** Registration order is exposition order. */
const FAMILIES: ReadonlyArray<(family: Family) => void> = [
  upMetrics,
  queueGauges,
  queueCounters,
  vmtaMetrics,
  engineMetrics,
  policyMetrics,
  tailerAndAcctMetrics,
  rampMetrics,
];

/**
 * A metric whose values come only from the current scrape's snapshot: when its source is down it has no
 * samples (rather than a misleading 0). The registry duck-types metrics by `name` and `get()`.
 */
class SnapshotMetric {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'gauge' | 'counter',
    private readonly snapshot: () => Promise<Snapshot>,
    private readonly fill: Fill,
  ) {}

  async get() {
    const s = await this.snapshot();
    const values: Array<{ labels: Record<string, string>; value: number }> = [];
    this.fill((labels, value) => values.push({ labels, value }), s);
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
