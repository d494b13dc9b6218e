/**
 * One policy decision: suppression first (a suppressed recipient is refused whatever the rates), then
 * every limit counted at this protocol stage. All limits are checked before any is counted, so a request
 * refused by one limit does not use up another. Everything here is memory-only and synchronous.
 */
import type { AcctRecord } from '../acct/record.js';
import type { KeyCounters } from './key-counters.js';
import { limitKey } from './limit-key.js';
import { addTo, type Limiter, overflowingWindow, removeFrom } from './limiter.js';
import { describeWindows, type PolicyLimit, type PolicySettings } from './limits-config.js';
import { addressDomain, type PolicyRequest } from './request.js';

export interface SuppressionCheck {
  check(address: string): boolean;
}

/** What the daemon knows about its stores; decisions read it, the persistence side sets it. */
export interface StoreHealth {
  counters: boolean;
  suppression: boolean;
}

/**
 * Per-connection transaction state. smtpd uses one policy connection for one SMTP session at a time, so
 * the `instance` changing on a connection means the previous transaction is over; if it never reached
 * DATA, its recipients were never sent and are taken back — but only once this connection has shown that
 * smtpd asks at DATA/END-OF-MESSAGE at all (otherwise "no DATA seen" proves nothing).
 */
export class Transaction {
  instance = '';
  reachedData = false;
  dataStageSeen = false;
  /** Counted at RCPT in the current transaction: what to take back if it ends without mail. */
  readonly counted: Array<{ k: KeyCounters; amount: number; at: number }> = [];
  /** Keys of `count messages` limits already counted for this message. */
  readonly messages = new Set<KeyCounters>();
}

export interface DecisionTotals {
  requests: number;
  permitted: number;
  limited: number;
  suppressed: number;
  storeUnavailable: number;
  refunded: number;
}

const TEMPORARY_UNAVAILABLE = 'DEFER_IF_PERMIT';

export class PolicyDecider {
  readonly totals: DecisionTotals = {
    requests: 0,
    permitted: 0,
    limited: 0,
    suppressed: 0,
    storeUnavailable: 0,
    refunded: 0,
  };
  private readonly amounts: number[] = [];
  private readonly hits: Array<KeyCounters | null> = [];

  constructor(
    readonly settings: PolicySettings,
    readonly limiter: Limiter,
    private readonly suppression: SuppressionCheck | null,
    private readonly health: StoreHealth,
    private readonly onRejection: (rec: AcctRecord) => void,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The reply action (without `action=`) for one request. */
  decide(req: PolicyRequest, txn: Transaction): string {
    const now = this.clock();
    this.totals.requests++;
    const stage = req.protocol_state;
    this.track(req, stage, txn, now);

    if (stage === 'RCPT' && this.settings.suppression.enabled && req.recipient !== '') {
      const sup = this.settings.suppression;
      if (!this.health.suppression || !this.suppression) {
        if (sup.storeFailure === 'closed') {
          this.totals.storeUnavailable++;
          return this.reject(
            req,
            TEMPORARY_UNAVAILABLE,
            '4.3.0 Suppression list temporarily unavailable',
            'suppression',
            now,
          );
        }
      } else if (this.suppression.check(req.recipient)) {
        this.totals.suppressed++;
        return this.reject(
          req,
          sup.action,
          sup.text.replaceAll('{recipient}', req.recipient),
          'suppression',
          now,
        );
      }
    }

    const counters = this.limiter.counters;
    const dirty = this.limiter.dirty;
    for (let i = 0; i < counters.length; i++) {
      const lc = counters[i]!;
      const limit = lc.limit;
      this.hits[i] = null;
      if (limit.countAt !== stage) continue;
      const key = limitKey(limit.key, req);
      if (key === null) continue;
      const k = lc.get(key, now, dirty);
      if (!k) continue;
      const amount = this.amountOf(limit, req, txn, k);
      if (amount <= 0) continue;
      if (!this.health.counters && limit.storeFailure === 'closed') {
        this.totals.storeUnavailable++;
        const text = `4.3.0 Rate limit ${limit.name} temporarily unavailable`;
        return this.reject(req, TEMPORARY_UNAVAILABLE, text, limit.name, now);
      }
      const over = overflowingWindow(k, amount, now);
      if (over >= 0) {
        this.totals.limited++;
        k.rejected++;
        k.lastRejectedAt = now;
        dirty.add(k);
        const reply = k.override ?? limit;
        const text = reply.text
          .replaceAll('{limit}', limit.name)
          .replaceAll('{key}', key)
          .replaceAll('{rate}', describeWindows([k.rates[over]!]));
        return this.reject(req, reply.action, text, limit.name, now);
      }
      this.hits[i] = k;
      this.amounts[i] = amount;
    }

    for (let i = 0; i < counters.length; i++) {
      const k = this.hits[i];
      if (!k) continue;
      const amount = this.amounts[i]!;
      addTo(k, amount, now);
      dirty.add(k);
      if (stage === 'RCPT') {
        txn.counted.push({ k, amount, at: now });
        if (k.limit.count === 'messages') txn.messages.add(k);
      }
    }
    this.totals.permitted++;
    return 'DUNNO';
  }

  private amountOf(limit: PolicyLimit, req: PolicyRequest, txn: Transaction, k: KeyCounters): number {
    const stage = limit.countAt;
    switch (limit.count) {
      case 'recipients':
        return stage === 'RCPT' ? 1 : toCount(req.recipient_count);
      case 'messages':
        return stage === 'RCPT' && txn.messages.has(k) ? 0 : 1;
      case 'bytes':
        return toCount(req.size);
    }
  }

  /** Follow the transaction on this connection; take back the counts of one that ended without DATA. */
  private track(req: PolicyRequest, stage: string, txn: Transaction, now: number): void {
    const instance = req.instance;
    if (instance === '') return;
    if (instance !== txn.instance) {
      if (txn.instance !== '' && !txn.reachedData && txn.dataStageSeen) {
        for (const c of txn.counted) {
          removeFrom(c.k, c.amount, c.at, now);
          this.limiter.dirty.add(c.k);
        }
        if (txn.counted.length > 0) this.totals.refunded++;
      }
      txn.instance = instance;
      txn.reachedData = false;
      txn.counted.length = 0;
      txn.messages.clear();
    }
    if (stage === 'DATA' || stage === 'END-OF-MESSAGE') {
      txn.reachedData = true;
      txn.dataStageSeen = true;
    }
  }

  private reject(req: PolicyRequest, action: string, text: string, source: string, now: number): string {
    const reply = `${action} ${text}`;
    const status = /^([245]\.\d{1,3}\.\d{1,3})\b/.exec(text)?.[1] ?? null;
    const permanent = action === 'REJECT' || action.startsWith('5');
    this.onRejection({
      type: 'rj',
      path: 'policy',
      timeLogged: now,
      orig: req.sender || null,
      rcpt: req.recipient || null,
      rcptDomain: req.recipient ? addressDomain(req.recipient) || null : null,
      dsnAction: permanent ? 'failed' : 'delayed',
      dsnStatus: status,
      dsnDiag: reply,
      bounceCat: 'policy-related',
      srcType: 'smtp',
      srcMta: req.client_address ? `${req.client_name || 'unknown'}[${req.client_address}]` : null,
      queue: `policy/${source}`,
      postfixQueueId: req.queue_id || null,
    });
    return reply;
  }
}

function toCount(value: string): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}
