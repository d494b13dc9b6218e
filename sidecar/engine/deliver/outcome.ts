/**
 * Turns the result of one attempt into what the rest of Freight sees: an accounting row per recipient
 * (`d`, `t`, `b`), the spool journal update, suppression of hard-bounced addresses, the DSN hook for
 * final failures, and removal of the message from the spool once every recipient is final.
 */

import { type AcctRecord, type BounceCategory, HARD_CATEGORIES } from '../../acct/record.js';
import { errorMessage } from '../../common/errors.js';
import { createLogger } from '../../common/log.js';
import { FAULTS, faultPoint } from '../fault-inject.js';
import { type AcctEvent, type AttemptPlace, eventRow } from '../spool/index.js';
import type { RecipientUpdate, SpooledMessage, SpoolPort } from '../types.js';

export type { AttemptPlace } from '../spool/index.js';

const log = createLogger('engine/outcome');

/** AcctWriter's shape. */
export interface AcctSink {
  write(rec: AcctRecord): void;
}

/** BounceClassifier's shape. */
export interface ReplyClassifier {
  classify(reply: string): { category: BounceCategory; hard: boolean };
}

/** SuppressionList's shape; `check` answers the entry of a suppressed address. */
export interface SuppressionPort {
  check(address: string): object | null | undefined;
  add(entry: { address: string; reason: string; source: 'bounce' }): unknown;
}

export interface BouncedRecipient {
  /** Index into msg.recipients. */
  index: number;
  rcpt: string;
  /** Enhanced status, e.g. 5.1.1. */
  status: string;
  /** `smtp;550 5.1.1 …` */
  diag: string;
  /** Remote MTA that said so, null for a local decision (expiry, null MX, suppression). */
  mta: string | null;
}

/** Provided by intake: builds and sends the failure DSN. */
export interface DsnSink {
  bounced(msg: SpooledMessage, rcpts: BouncedRecipient[]): void;
}

export interface OutcomePorts {
  spool: SpoolPort;
  acct: AcctSink;
  classifier: ReplyClassifier;
  suppression: SuppressionPort;
  dsnSink: DsnSink;
}

export function enhancedStatus(code: number, reply: string): string {
  const m = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  if (m?.[1]) return m[1];
  const cls = Math.floor(code / 100);
  return cls === 2 || cls === 4 || cls === 5 ? `${cls}.0.0` : '4.0.0';
}

/**
 * Collects the outcomes of one attempt (one job) and commits them together: one spool.update, one
 * DSN call, and spool.remove when the message has no recipient left.
 */
export class AttemptOutcome {
  private readonly updates: RecipientUpdate[] = [];
  private readonly bounced: BouncedRecipient[] = [];
  private finals = 0;
  private delivers = 0;

  constructor(
    private readonly ports: OutcomePorts,
    private readonly msg: SpooledMessage,
    private readonly place: AttemptPlace,
    private readonly now: number,
  ) {}

  /**
   * The recipient's row, from the same facts its journal record carries (so recovery rebuilds the
   * identical row); the facts ride on the recipient's update.
   */
  private record(index: number, type: AcctEvent['type'], status: string, cat: BounceCategory | null) {
    const r = this.msg.recipients[index];
    if (!r) return;
    const ev: AcctEvent = { type, at: this.now, status, bounceCat: cat, place: this.place };
    this.write(eventRow(this.msg, index, r.attempts, r.lastDiag, ev));
    this.push(index, ev);
  }

  private write(rec: AcctRecord): void {
    try {
      this.ports.acct.write(rec);
    } catch (err) {
      log.error('accounting row refused', { error: errorMessage(err), type: rec.type, rcpt: rec.rcpt });
    }
  }

  delivered(index: number, reply: string, code: number): void {
    const r = this.msg.recipients[index];
    if (!r) return;
    r.attempts++;
    r.state = 'delivered';
    r.lastDiag = `smtp;${reply}`;
    r.nextAttemptAt = 0;
    this.delivers++;
    this.record(index, 'd', enhancedStatus(code, reply), null);
    this.finals++;
  }

  /** 4xx reply or a failure to reach the remote; the recipient stays queued until `nextAttemptAt`. */
  deferred(index: number, reply: string, code: number, nextAttemptAt: number): void {
    const r = this.msg.recipients[index];
    if (!r) return;
    r.attempts++;
    r.nextAttemptAt = nextAttemptAt;
    r.lastDiag = `smtp;${reply}`;
    const cat = this.ports.classifier.classify(reply).category;
    this.record(index, 't', enhancedStatus(code, reply), cat);
  }

  /**
   * Final failure. `category` is given for local decisions (expiry, bad domain, suppression); remote
   * replies are classified. `attempted` is false when no delivery was tried for this event.
   */
  failed(
    index: number,
    reply: string,
    code: number,
    opts: { category?: BounceCategory; attempted: boolean },
  ): void {
    const r = this.msg.recipients[index];
    if (!r) return;
    if (opts.attempted) r.attempts++;
    r.state = 'bounced';
    r.nextAttemptAt = 0;
    r.lastDiag = `smtp;${reply}`;
    const classified = opts.category
      ? { category: opts.category, hard: HARD_CATEGORIES.has(opts.category) }
      : this.ports.classifier.classify(reply);
    const status = enhancedStatus(code, reply);
    this.record(index, 'b', status, classified.category);
    if (classified.hard) {
      try {
        this.ports.suppression.add({
          address: r.rcpt,
          reason: `${classified.category}: ${reply}`,
          source: 'bounce',
        });
      } catch (err) {
        log.error('cannot add to suppression list', { rcpt: r.rcpt, error: errorMessage(err) });
      }
    }
    this.bounced.push({ index, rcpt: r.rcpt, status, diag: `smtp;${reply}`, mta: this.place.mta });
    this.finals++;
  }

  private push(index: number, acct: AcctEvent): void {
    const r = this.msg.recipients[index]!;
    this.updates.push({
      messageId: this.msg.id,
      rcptIndex: index,
      state: r.state,
      attempts: r.attempts,
      nextAttemptAt: r.nextAttemptAt,
      lastDiag: r.lastDiag,
      acct,
    });
  }

  /** Recipients of this attempt that became final (delivered or bounced). */
  get finalCount(): number {
    return this.finals;
  }

  /** Journal the updates, then send the DSN; `messageDone` removes the spool files. */
  commit(messageDone: boolean): void {
    if (FAULTS && this.delivers > 0) faultPoint('remote-250');
    if (this.updates.length > 0) this.ports.spool.update(this.updates);
    if (this.bounced.length > 0) {
      try {
        this.ports.dsnSink.bounced(this.msg, this.bounced);
      } catch (err) {
        log.error('DSN hook failed', { id: this.msg.id, error: errorMessage(err) });
      }
    }
    if (messageDone) this.ports.spool.remove(this.msg);
  }
}
