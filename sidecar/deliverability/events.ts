/**
 * Every deliverability decision (queue mode change, source IP disabled/enabled, warm-up advanced/held,
 * DNSBL listing) is recorded the same way: an accounting `tq` row and a log line, each carrying the reply
 * or reason that caused it. On `tq` rows Freight puts the event name in `dsnAction` (PowerMTA defines no
 * action for queue-level events) and the cause in `dsnDiag`.
 */
import type { AcctRecord } from '../acct/record.js';
import { errorMessage } from '../common/errors.js';
import { createLogger, type Logger } from '../common/log.js';

export type DeliverabilityEventKind =
  | 'mode-backoff'
  | 'mode-normal'
  | 'source-ip-disabled'
  | 'source-ip-enabled'
  | 'rate-decreased'
  | 'warmup-advanced'
  | 'warmup-held'
  | 'dnsbl-listed'
  | 'dnsbl-delisted';

export interface DeliverabilityEvent {
  kind: DeliverabilityEventKind;
  at: number;
  /** Queue domain ('*' when the event covers every domain). */
  domain: string;
  vmta: string;
  /** Source IP concerned, when known. */
  sourceIp?: string | null;
  /** The SMTP reply or the reason that caused the event. */
  cause: string;
  /** Extra facts for the log line (new rate, day, zone…). */
  details?: Record<string, unknown>;
}

/** The part of AcctWriter the recorder needs (tests pass a real AcctWriter). */
export interface AcctSink {
  write(rec: AcctRecord): void;
}

export class EventRecorder {
  private readonly acct: AcctSink | null;
  private readonly log: Logger;
  private readonly listeners = new Set<(e: DeliverabilityEvent) => void>();

  constructor(acct: AcctSink | null, log: Logger = createLogger('deliverability')) {
    this.acct = acct;
    this.log = log;
  }

  /** Subscribe (e.g. the scheduler re-reading effective settings); returns an unsubscribe function. */
  on(fn: (e: DeliverabilityEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  record(e: DeliverabilityEvent): void {
    this.log.info(e.kind, {
      queue: `${e.domain}/${e.vmta}`,
      sourceIp: e.sourceIp ?? undefined,
      cause: e.cause,
      ...e.details,
    });
    if (this.acct) {
      try {
        this.acct.write({
          type: 'tq',
          timeLogged: e.at,
          path: 'engine',
          queue: `${e.domain}/${e.vmta}`,
          vmta: e.vmta,
          rcptDomain: e.domain === '*' ? null : e.domain,
          dlvSourceIp: e.sourceIp ?? null,
          dsnAction: e.kind,
          dsnDiag: e.cause,
        });
      } catch (err) {
        // The decision stands even if its row cannot be written; the log line above still shows it.
        this.log.error('cannot record deliverability event', { kind: e.kind, error: errorMessage(err) });
      }
    }
    for (const fn of this.listeners) fn(e);
  }
}
