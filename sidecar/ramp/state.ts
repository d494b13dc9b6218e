/**
 * Ramp state in the accounting database (it is already durable, shared by every daemon on the host, and
 * safe for a CLI to write while daemons read): the share per domain, and the measured split per share
 * period. Tables are created here idempotently; they belong to the ramp, not to the accounting schema.
 *
 * A share period starts whenever a domain's share changes (`changed_at`), so the measured split shown next
 * to a share is always the split *at that share*, not a blend with earlier ones.
 */
import { AcctStore } from '../acct/store.js';
import { FreightError } from '../common/errors.js';

export interface RampShare {
  domain: string;
  /** 0..100, two decimals. */
  percent: number;
  /** ms since the epoch when the share last changed: the start of the current share period. */
  changedAt: number;
}

export interface RampSplit {
  domain: string;
  /** Start of the share period these counts belong to. */
  since: number;
  /** Distinct recipients answered with the engine transport. */
  engine: number;
  /** Distinct recipients answered NOTFOUND (Postfix's own transports). */
  postfix: number;
}

/** Counts to add to one (domain, period) row. */
export interface SplitDelta {
  domain: string;
  since: number;
  engine: number;
  postfix: number;
}

const DOMAIN_RE =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** A domain as the ramp stores it (lower case, no trailing dot); throws RAMP_BAD_DOMAIN. */
export function parseRampDomain(text: string): string {
  const domain = text.trim().toLowerCase().replace(/\.$/, '');
  if (!DOMAIN_RE.test(domain)) {
    throw new FreightError('RAMP_BAD_DOMAIN', `not a domain name: '${text}'`, { domain: text });
  }
  return domain;
}

/** `10`, `2.5`, `10%` → percent; throws RAMP_BAD_PERCENT outside 0..100 or with more than two decimals. */
export function parseRampPercent(text: string): number {
  const m = /^\s*(\d{1,3}(?:\.\d{1,2})?)\s*%?\s*$/.exec(text);
  const value = m ? Number(m[1]) : Number.NaN;
  if (!(value >= 0 && value <= 100)) {
    throw new FreightError(
      'RAMP_BAD_PERCENT',
      `share must be a percentage 0..100 (two decimals at most), got '${text}'`,
      {
        percent: text,
      },
    );
  }
  return value;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ramp_share (
  domain     TEXT PRIMARY KEY,
  percent    REAL NOT NULL,
  changed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ramp_split (
  domain  TEXT NOT NULL,
  since   INTEGER NOT NULL,
  engine  INTEGER NOT NULL DEFAULT 0,
  postfix INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (domain, since)
);
`;

export class RampState {
  private constructor(private readonly store: AcctStore) {}

  /**
   * Open (and create the tables in) the accounting database. The daemon passes a short busy timeout so
   * a long write elsewhere delays a counter flush, never the event loop that answers Postfix.
   */
  static open(acctDb: string, opts: { busyTimeoutMs?: number } = {}): RampState {
    const store = AcctStore.open(acctDb, { busyTimeoutMs: opts.busyTimeoutMs ?? 10_000 });
    try {
      store.db.exec(SCHEMA);
    } catch (err) {
      store.close();
      throw new FreightError('RAMP_STATE', `cannot create ramp tables in ${acctDb}: ${String(err)}`);
    }
    return new RampState(store);
  }

  close(): void {
    this.store.close();
  }

  shares(): RampShare[] {
    return this.store.db
      .prepare('SELECT domain, percent, changed_at AS changedAt FROM ramp_share ORDER BY domain')
      .all() as RampShare[];
  }

  /**
   * Set a domain's share. Returns the stored row; an unchanged share keeps its period (and its counts).
   * A new period always starts after the previous one, even if the clock stepped back.
   */
  setShare(domain: string, percent: number, now = Date.now()): RampShare {
    const db = this.store.db;
    // IMMEDIATE: this reads, then writes. A deferred transaction that upgrades while the running daemon
    // commits split counts fails with SQLITE_BUSY at once (busy_timeout cannot help an upgrade).
    return db
      .transaction((): RampShare => {
        const old = db
          .prepare('SELECT domain, percent, changed_at AS changedAt FROM ramp_share WHERE domain = ?')
          .get(domain) as RampShare | undefined;
        if (old && old.percent === percent) return old;
        const changedAt = old ? Math.max(now, old.changedAt + 1) : now;
        db.prepare(
          `INSERT INTO ramp_share (domain, percent, changed_at) VALUES (?, ?, ?)
         ON CONFLICT(domain) DO UPDATE SET percent = excluded.percent, changed_at = excluded.changed_at`,
        ).run(domain, percent, changedAt);
        return { domain, percent, changedAt };
      })
      .immediate();
  }

  /** Forget a domain: Postfix's own transports apply to all of it again. Returns false if it was not set. */
  removeShare(domain: string): boolean {
    return this.store.db.prepare('DELETE FROM ramp_share WHERE domain = ?').run(domain).changes > 0;
  }

  addSplit(deltas: SplitDelta[]): void {
    if (deltas.length === 0) return;
    const db = this.store.db;
    const upsert = db.prepare(
      `INSERT INTO ramp_split (domain, since, engine, postfix) VALUES (@domain, @since, @engine, @postfix)
       ON CONFLICT(domain, since) DO UPDATE SET engine = engine + excluded.engine,
         postfix = postfix + excluded.postfix`,
    );
    db.transaction(() => {
      for (const d of deltas) upsert.run(d);
    })();
  }

  /** The split of each domain's current share period (domains with a share only). */
  currentSplits(): RampSplit[] {
    return this.store.db
      .prepare(
        `SELECT s.domain, s.changed_at AS since, COALESCE(p.engine, 0) AS engine, COALESCE(p.postfix, 0) AS postfix
         FROM ramp_share s LEFT JOIN ramp_split p ON p.domain = s.domain AND p.since = s.changed_at
         ORDER BY s.domain`,
      )
      .all() as RampSplit[];
  }
}

export type RampReportRow = {
  domain: string;
  share: number;
  engine: number;
  postfix: number;
  /** engine / (engine + postfix) in percent, or null before any recipient was asked about. */
  measured: number | null;
  since: string;
};

/** Each ramped domain's share and measured split, as `freight ramp show` and `GET /ramp` report it. */
export function rampReport(state: RampState): RampReportRow[] {
  const shares = new Map(state.shares().map((s) => [s.domain, s.percent]));
  return state.currentSplits().map((s) => {
    const total = s.engine + s.postfix;
    return {
      domain: s.domain,
      share: shares.get(s.domain) ?? 0,
      engine: s.engine,
      postfix: s.postfix,
      measured: total > 0 ? Number(((100 * s.engine) / total).toFixed(2)) : null,
      since: new Date(s.since).toISOString(),
    };
  });
}
