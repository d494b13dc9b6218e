/**
 * Read side of the accounting store, for the CLI and the API: summaries (from hourly rollups plus the raw
 * rows of partial edge hours, so a 24 h summary stays fast at 10 M rows), filtered listings and the trail
 * of one message across the Postfix and engine paths.
 */
import { FreightError } from '../common/errors.js';
import { diagKey, HOUR_MS, hourOf } from './rollup.js';
import type { AcctStore } from './store.js';

export const SUMMARY_GROUPS = ['domain', 'vmta', 'category', 'path', 'job', 'hour'] as const;
export type SummaryBy = (typeof SUMMARY_GROUPS)[number];

export interface SummaryOptions {
  by?: SummaryBy;
  /** Epoch ms, inclusive. Default: everything. */
  since?: number;
  /** Epoch ms, exclusive. Default: no upper bound. */
  until?: number;
  domain?: string;
  /** How many deferral diagnostics to keep per group (default 3). */
  topDiagnostics?: number;
}

export interface SummaryRow {
  group: string;
  received: number;
  delivered: number;
  bounced: number;
  deferred: number;
  /** delivered / (delivered + bounced); null when neither happened. */
  deliveryRate: number | null;
  /** deferred / (delivered + bounced + deferred): the share of delivery attempts that were deferred. */
  deferralRate: number | null;
  topDeferrals: Array<{ diag: string; count: number }>;
}

const ROLLUP_GROUP: Record<SummaryBy, string> = {
  domain: 'rcptDomain',
  vmta: 'vmta',
  category: 'bounceCat',
  path: 'path',
  job: 'jobId',
  hour: 'hour',
};

const RAW_GROUP: Record<SummaryBy, string> = {
  domain: "COALESCE(rcptDomain, '')",
  vmta: "COALESCE(vmta, '')",
  category: "COALESCE(bounceCat, '')",
  path: 'path',
  job: "COALESCE(jobId, '')",
  hour: `(timeLogged / ${HOUR_MS}) * ${HOUR_MS}`,
};

interface Window {
  kind: 'rollup' | 'raw';
  from: number;
  to: number;
}

/** Split [since, until) into whole hours (read from rollups) and partial edge hours (read raw). */
function windows(since: number, until: number): Window[] {
  const firstFull = since === hourOf(since) ? since : hourOf(since) + HOUR_MS;
  const lastFull = Number.isFinite(until) ? hourOf(until) : Number.POSITIVE_INFINITY;
  if (firstFull >= lastFull) return [{ kind: 'raw', from: since, to: until }];
  const out: Window[] = [{ kind: 'rollup', from: firstFull, to: lastFull }];
  if (since < firstFull) out.push({ kind: 'raw', from: since, to: firstFull });
  if (lastFull < until) out.push({ kind: 'raw', from: lastFull, to: until });
  return out;
}

function groupLabel(by: SummaryBy | undefined, v: unknown): string {
  if (!by) return 'all';
  if (by === 'hour') return new Date(Number(v)).toISOString().slice(0, 13) + ':00Z';
  return v === '' || v == null ? '-' : String(v);
}

/** Per group label: counts by record type, and deferral diagnostics by count. */
type SummaryGroups = Map<string, { counts: Record<string, number>; diags: Map<string, number> }>;

export function summary(store: AcctStore, opts: SummaryOptions = {}): SummaryRow[] {
  const by = opts.by;
  if (by && !SUMMARY_GROUPS.includes(by)) {
    throw new FreightError('ACCT_BAD_GROUP', `--by must be one of ${SUMMARY_GROUPS.join(', ')}`);
  }
  const since = opts.since ?? 0;
  const until = opts.until ?? Number.POSITIVE_INFINITY;
  const domain = opts.domain?.toLowerCase();
  const groups: SummaryGroups = new Map();
  for (const w of windows(since, until)) {
    const { where, params } = windowFilter(w, domain);
    if (w.kind === 'rollup') countRollups(store, groups, by, where, params);
    else countRaw(store, groups, by, where, params);
  }
  return sortSummary(summaryRows(groups, opts.topDiagnostics ?? 3), by);
}

/** The WHERE clause of one window: rollups are keyed by hour, raw rows by timeLogged. */
function windowFilter(w: Window, domain: string | undefined): { where: string; params: unknown[] } {
  const column = w.kind === 'rollup' ? 'hour' : 'timeLogged';
  const params: unknown[] = [w.from];
  let where = `${column} >= ?`;
  if (Number.isFinite(w.to)) {
    where += ` AND ${column} < ?`;
    params.push(w.to);
  }
  if (domain) {
    where += ' AND rcptDomain = ?';
    params.push(domain);
  }
  return { where, params };
}

function groupEntry(groups: SummaryGroups, g: string) {
  let e = groups.get(g);
  if (!e) groups.set(g, (e = { counts: {}, diags: new Map() }));
  return e;
}

function countRollups(
  store: AcctStore,
  groups: SummaryGroups,
  by: SummaryBy | undefined,
  where: string,
  params: unknown[],
): void {
  const g = by ? ROLLUP_GROUP[by] : "'all'";
  const rows = store.db
    .prepare(`SELECT ${g} AS g, type, SUM(n) AS n FROM acct_hourly WHERE ${where} GROUP BY 1, 2`)
    .all(...params) as Array<{ g: unknown; type: string; n: number }>;
  for (const r of rows) addCount(groupEntry(groups, groupLabel(by, r.g)).counts, r.type, r.n);
  const diags = store.db
    .prepare(
      `SELECT ${g} AS g, diag, SUM(n) AS n FROM acct_diag_hourly WHERE ${where} AND type = 't' GROUP BY 1, 2`,
    )
    .all(...params) as Array<{ g: unknown; diag: string; n: number }>;
  for (const d of diags) addCount(groupEntry(groups, groupLabel(by, d.g)).diags, d.diag, d.n);
}

function countRaw(
  store: AcctStore,
  groups: SummaryGroups,
  by: SummaryBy | undefined,
  where: string,
  params: unknown[],
): void {
  const g = by ? RAW_GROUP[by] : "'all'";
  const rows = store.db
    .prepare(`SELECT ${g} AS g, type, COUNT(*) AS n FROM acct WHERE ${where} GROUP BY 1, 2`)
    .all(...params) as Array<{ g: unknown; type: string; n: number }>;
  for (const r of rows) addCount(groupEntry(groups, groupLabel(by, r.g)).counts, r.type, r.n);
  const diags = store.db
    .prepare(`SELECT ${g} AS g, dsnDiag FROM acct WHERE ${where} AND type = 't' AND dsnDiag IS NOT NULL`)
    .all(...params) as Array<{ g: unknown; dsnDiag: string }>;
  for (const d of diags) addCount(groupEntry(groups, groupLabel(by, d.g)).diags, diagKey(d.dsnDiag), 1);
}

function summaryRows(groups: SummaryGroups, top: number): SummaryRow[] {
  const out: SummaryRow[] = [];
  for (const [group, { counts, diags }] of groups) {
    const d = counts.d ?? 0;
    const b = counts.b ?? 0;
    const t = counts.t ?? 0;
    out.push({
      group,
      received: counts.r ?? 0,
      delivered: d,
      bounced: b,
      deferred: t,
      deliveryRate: d + b > 0 ? d / (d + b) : null,
      deferralRate: d + b + t > 0 ? t / (d + b + t) : null,
      topDeferrals: [...diags]
        .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1))
        .slice(0, top)
        .map(([diag, count]) => ({ diag, count })),
    });
  }
  return out;
}

/** Hours in time order; other groups busiest first, ties by name. */
function sortSummary(out: SummaryRow[], by: SummaryBy | undefined): SummaryRow[] {
  if (by === 'hour') out.sort((x, y) => (x.group < y.group ? -1 : 1));
  else
    out.sort(
      (x, y) =>
        y.received +
          y.delivered +
          y.bounced +
          y.deferred -
          (x.received + x.delivered + x.bounced + x.deferred) || (x.group < y.group ? -1 : 1),
    );
  return out;
}

function addCount(m: Record<string, number> | Map<string, number>, k: string, n: number): void {
  if (m instanceof Map) m.set(k, (m.get(k) ?? 0) + n);
  else m[k] = (m[k] ?? 0) + n;
}

export interface ListFilters {
  types?: string[];
  rcpt?: string;
  domain?: string;
  job?: string;
  vmta?: string;
  category?: string;
  since?: number;
  until?: number;
  /** Default 100; 0 = no limit. */
  limit?: number;
  /** Oldest first (export) instead of newest first (list). */
  ascending?: boolean;
}

/** A stored row as read back: every AcctRecord column plus the row id. */
export type AcctRow = Record<string, string | number | null> & {
  id: number;
  type: string;
  timeLogged: number;
};

function filterSql(f: ListFilters): { where: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  if (f.types && f.types.length > 0) {
    clauses.push(`type IN (${f.types.map(() => '?').join(', ')})`);
    params.push(...f.types);
  }
  if (f.rcpt) {
    clauses.push('rcpt = ?');
    params.push(f.rcpt);
  }
  if (f.domain) {
    clauses.push('rcptDomain = ?');
    params.push(f.domain.toLowerCase());
  }
  if (f.job) {
    clauses.push('jobId = ?');
    params.push(f.job);
  }
  if (f.vmta) {
    clauses.push('vmta = ?');
    params.push(f.vmta);
  }
  if (f.category) {
    clauses.push('bounceCat = ?');
    params.push(f.category);
  }
  if (f.since !== undefined) {
    clauses.push('timeLogged >= ?');
    params.push(f.since);
  }
  if (f.until !== undefined) {
    clauses.push('timeLogged < ?');
    params.push(f.until);
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

function listStatement(f: ListFilters): { sql: string; params: unknown[] } {
  const { where, params } = filterSql(f);
  const dir = f.ascending ? 'ASC' : 'DESC';
  const limit = f.limit ?? 100;
  const sql = `SELECT * FROM acct ${where} ORDER BY timeLogged ${dir}, id ${dir}${limit > 0 ? ` LIMIT ${Math.floor(limit)}` : ''}`;
  return { sql, params };
}

export function list(store: AcctStore, f: ListFilters = {}): AcctRow[] {
  const { sql, params } = listStatement(f);
  return store.db.prepare(sql).all(...params) as AcctRow[];
}

/** Stream matching rows without holding them all in memory (export). */
export function iterate(store: AcctStore, f: ListFilters = {}): IterableIterator<AcctRow> {
  const { sql, params } = listStatement(f);
  return store.db.prepare(sql).iterate(...params) as IterableIterator<AcctRow>;
}

/**
 * Every event of one message, oldest first. `key` is a Message-ID (with or without <>), a Postfix queue
 * id or a recipient address. Ids are followed across the hand-off: a Postfix row that names the engine's
 * message id pulls in the engine's rows and vice versa.
 */
export function trail(store: AcctStore, key: string, limit = 10_000): AcctRow[] {
  const db = store.db;
  const bare = key.replace(/^<|>$/g, '');
  const ids = new Set<string>([key, bare, `<${bare}>`]);
  const queueIds = new Set<string>([key]);
  const seen = new Map<number, AcctRow>();
  const byMessage = db.prepare('SELECT * FROM acct WHERE messageId = ? LIMIT ?');
  const byQueue = db.prepare('SELECT * FROM acct WHERE postfixQueueId = ? LIMIT ?');
  const doneIds = new Set<string>();
  const doneQueue = new Set<string>();
  for (let round = 0; round < 4; round++) {
    let grew = false;
    const found: AcctRow[] = [];
    for (const id of ids) {
      if (doneIds.has(id)) continue;
      doneIds.add(id);
      found.push(...(byMessage.all(id, limit) as AcctRow[]));
    }
    for (const q of queueIds) {
      if (doneQueue.has(q)) continue;
      doneQueue.add(q);
      found.push(...(byQueue.all(q, limit) as AcctRow[]));
    }
    for (const row of found) {
      if (seen.has(row.id)) continue;
      seen.set(row.id, row);
      grew = true;
      if (typeof row.messageId === 'string') ids.add(row.messageId);
      if (typeof row.postfixQueueId === 'string') queueIds.add(row.postfixQueueId);
    }
    if (!grew) break;
  }
  if (seen.size === 0 && bare.includes('@')) {
    const rows = db
      .prepare('SELECT * FROM acct WHERE rcpt IN (?, ?) ORDER BY timeLogged, id LIMIT ?')
      .all(bare, bare.toLowerCase(), limit) as AcctRow[];
    for (const r of rows) seen.set(r.id, r);
  }
  return [...seen.values()].sort((a, b) => a.timeLogged - b.timeLogged || a.id - b.id);
}
