/**
 * The contract between the engine's control channel (`freight show|pause|resume|schedule`, owned by the
 * intake/daemon half) and the delivery half (scheduler), which holds the queue state and implements
 * `EngineControl`. Every value is plain JSON (numbers, strings, booleans, null, arrays, objects) because
 * it crosses a unix socket as-is; times are epoch milliseconds, rates are messages per minute.
 * Methods may answer synchronously or with a promise.
 */
import type { ErrorCode } from '../../common/error-codes.js';

/** One per-(domain, vmta) queue, as `freight show queues` lists it. */
export interface QueueInfo {
  /** Queue's destination domain (after mx-rollup / queue-to, i.e. the queue key's domain). */
  domain: string;
  /** Virtual MTA this queue delivers through. */
  vmta: string;
  /** Recipients waiting in this queue (not yet final, including those in flight). */
  depth: number;
  /** Recipients currently being delivered (in an open SMTP transaction). */
  inFlight: number;
  /** Open SMTP connections, and the effective `max-smtp-out`. */
  connections: number;
  maxConnections: number;
  /** Delivered messages per minute over the last minute. */
  rate: number;
  /** 'normal' | 'backoff' (pattern-list mode) — PowerMTA's queue modes. */
  mode: 'normal' | 'backoff';
  /** Paused by an operator (`freight pause queue`). */
  paused: boolean;
  /** Earliest epoch ms at which a waiting recipient becomes due; null if none waiting. */
  nextAttemptAt: number | null;
  /** Last delivery error on this queue (reply or local reason), and when; null if none yet. */
  lastError: string | null;
  lastErrorAt: number | null;
  /** Totals since the engine started. */
  delivered: number;
  bounced: number;
  deferred: number;
}

/** Per-domain roll-up of its queues (`freight show domains`). */
export interface DomainInfo {
  domain: string;
  /** Number of (domain, vmta) queues. */
  queues: number;
  depth: number;
  inFlight: number;
  connections: number;
  rate: number;
  /** True when every queue of the domain is paused. */
  paused: boolean;
  /** Most recent lastError among its queues. */
  lastError: string | null;
  lastErrorAt: number | null;
  delivered: number;
  bounced: number;
  deferred: number;
}

/** Per virtual MTA (`freight show vmtas`). */
export interface VmtaInfo {
  name: string;
  sourceIp: string;
  hostName: string;
  queues: number;
  depth: number;
  connections: number;
  rate: number;
  /** Source IP disabled by a pattern rule (`disable-source-ip`), and until when (epoch ms). */
  disabled: boolean;
  disabledUntil: number | null;
  delivered: number;
  bounced: number;
  deferred: number;
}

/** Delivery-side overall status (`freight show status`, part of it). */
export interface DeliveryStatus {
  /** Messages and recipients held by the scheduler (not yet final). */
  queuedMessages: number;
  queuedRecipients: number;
  inFlight: number;
  connections: number;
  queues: number;
  pausedQueues: number;
  /** Delivered messages per minute over the last minute, all queues. */
  rate: number;
  delivered: number;
  bounced: number;
  deferred: number;
  /** Most recent error of any queue, with its queue. */
  lastError: string | null;
  lastErrorAt: number | null;
  lastErrorQueue: string | null;
}

/** Result of pause/resume: the queues whose state changed (`domain/vmta`). */
export interface QueueActionResult {
  queues: string[];
}

/** Result of `freight schedule D`: recipients made due now. */
export interface ScheduleResult {
  domain: string;
  rescheduled: number;
}

/**
 * Implemented by the scheduler. `pause(domain)` without vmta pauses every queue of the domain, including
 * queues created later for it while paused; `resume` undoes it. An unknown domain is not an error for
 * pause (it applies when mail for it arrives); for resume/schedule it yields an empty result.
 */
export interface EngineControl {
  status(): DeliveryStatus | Promise<DeliveryStatus>;
  queues(): QueueInfo[] | Promise<QueueInfo[]>;
  domains(): DomainInfo[] | Promise<DomainInfo[]>;
  vmtas(): VmtaInfo[] | Promise<VmtaInfo[]>;
  pause(domain: string, vmta?: string): QueueActionResult | Promise<QueueActionResult>;
  resume(domain: string, vmta?: string): QueueActionResult | Promise<QueueActionResult>;
  schedule(domain: string): ScheduleResult | Promise<ScheduleResult>;
}

/** Intake-side status, added by the daemon to `freight show status`. */
export interface IntakeStatus {
  listener: string;
  protocol: 'lmtp' | 'smtp';
  sessions: number;
  acceptedMessages: number;
  acceptedRecipients: number;
  /** Transactions answered 4xx because of back-pressure (disk or saturation). */
  tempRejected: number;
  /** Whether intake currently refuses new mail (452) and why. */
  refusing: string | null;
}

export interface SpoolStatus {
  dir: string;
  messages: number;
  freeBytes: number;
  minFreeBytes: number;
  journalBytes: number;
  /** Data segments holding bodies, and their bytes on disk (live and not yet compacted). */
  dataSegments: number;
  dataBytes: number;
  /** Bodies held in memory for their first attempt. */
  bodyCacheBytes: number;
}

/** Failure DSNs on their way to Postfix; counters run since the engine started. */
export interface DsnStatus {
  /** DSNs in the outbox waiting for Postfix. */
  outbox: number;
  /** DSNs waiting for a retry after a failure (reading the original, the outbox, or Postfix). */
  retrying: number;
  sent: number;
  /** DSNs Postfix refused permanently (dropped; logged). */
  failed: number;
  /** Outbox files moved to dsn/corrupt/ (unreadable, or not an outbox file). */
  corrupt: number;
  /** DSNs sent without the original, which could not be read from the spool. */
  withoutOriginal: number;
  /** Failed tries that were retried. */
  errors: number;
}

/** What `freight show status --json` prints. */
export interface EngineStatusReport {
  pid: number;
  startedAt: number;
  configFile: string;
  intake: IntakeStatus;
  spool: SpoolStatus;
  delivery: DeliveryStatus;
  dsn: DsnStatus;
  /** Accounting rows buffered for the store (intake answers 452 past the writer's bound). */
  acctBacklog: number;
  /** Rows the store refused, kept in acct_quarantine (-1: could not be counted). */
  acctQuarantined: number;
  /** A batch failed (store locked, full) and is being retried; the last store error. */
  acctRetrying: boolean;
  acctLastError: string | null;
  /** Rows were let go from memory while the store stayed down; the next start replays them. */
  acctOverflowed: boolean;
}

/** The control protocol: one JSON request per line, one JSON response per line. */
export type ControlRequest =
  | { op: 'status' }
  | { op: 'queues' }
  | { op: 'domains' }
  | { op: 'vmtas' }
  | { op: 'pause'; domain: string; vmta?: string }
  | { op: 'resume'; domain: string; vmta?: string }
  | { op: 'schedule'; domain: string }
  | { op: 'reload' };

export type ControlResponse = { ok: true; result: unknown } | { ok: false; code: ErrorCode; error: string };
