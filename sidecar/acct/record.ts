/**
 * One accounting row per recipient event (PowerMTA's record types and field names,
 * so PowerMTA accounting tooling reads the export unchanged).
 * Every writer (engine, tailer, policy daemon) produces these; the store persists them unchanged.
 */
import { BOUNCE_CATEGORIES, type BounceCategory } from '../common/bounce-category.js';

export type AcctType =
  | 'r' // received
  | 'd' // delivered
  | 'b' // bounced
  | 't' // transient failure (deferred)
  | 'tq' // queue-level transient event (mode change, source IP disabled, …)
  | 'rb' // remote bounce
  | 'f' // feedback (complaint)
  | 'rj'; // rejected at intake (policy REJECT/DEFER, NOQUEUE reject) — Freight's own type

/**
 * Which path produced the event: `postfix` (Postfix delivered it itself), `handoff` (Postfix handing the
 * message to the engine — not a delivery to the recipient, so side-by-side reports and PowerMTA exports
 * keep it apart), `engine`, or `policy` (decided at intake by the policy daemon).
 */
export type AcctPath = 'engine' | 'postfix' | 'handoff' | 'policy';

/** A record's bounce category is one of these; they live in common so that config can name them too. */
export { BOUNCE_CATEGORIES, type BounceCategory };

/** Categories whose bounce means the address itself is bad: suppress it (never for a 4xx reply). */
export const HARD_CATEGORIES: ReadonlySet<BounceCategory> = new Set([
  'bad-mailbox',
  'bad-domain',
  'inactive-mailbox',
]);

export interface AcctRecord {
  type: AcctType;
  /** Epoch milliseconds. */
  timeLogged: number;
  /** Epoch milliseconds when the message entered the queue that produced this event. */
  timeQueued?: number | null;
  orig?: string | null;
  rcpt?: string | null;
  orcpt?: string | null;
  /** RFC 3464 action: delivered | failed | delayed | relayed | expanded. */
  dsnAction?: string | null;
  /** Enhanced status code, e.g. 5.1.1. */
  dsnStatus?: string | null;
  /** The remote reply or local diagnostic, e.g. `smtp;550 5.1.1 user unknown`. */
  dsnDiag?: string | null;
  /** Remote MTA, e.g. `mx.example.com (192.0.2.1)`. */
  dsnMta?: string | null;
  bounceCat?: BounceCategory | null;
  srcType?: string | null;
  srcMta?: string | null;
  dlvType?: string | null;
  dlvSourceIp?: string | null;
  dlvDestinationIp?: string | null;
  dlvEsmtpAvailable?: string | null;
  dlvSize?: number | null;
  vmta?: string | null;
  jobId?: string | null;
  envId?: string | null;
  queue?: string | null;
  vmtaPool?: string | null;
  // Freight's own fields
  path: AcctPath;
  postfixQueueId?: string | null;
  messageId?: string | null;
  rcptDomain?: string | null;
  attempt?: number | null;
  /**
   * Idempotency key (unique when set): a writer that may see the same event twice — the tailer
   * re-reading a log line — sets it (e.g. `file-inode:offset`), and the store ignores a second row
   * with the same key, so re-importing adds nothing. Null/absent: never deduplicated.
   */
  dedupeKey?: string | null;
}

/** The recipient's domain, lower-cased: `rcptDomain` if the writer set it, else taken from `rcpt`. */
export function rcptDomainOf(rec: Pick<AcctRecord, 'rcpt' | 'rcptDomain'>): string | null {
  if (rec.rcptDomain) return rec.rcptDomain.toLowerCase();
  const at = rec.rcpt ? rec.rcpt.lastIndexOf('@') : -1;
  return at >= 0 ? rec.rcpt!.slice(at + 1).toLowerCase() : null;
}
