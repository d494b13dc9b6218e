/**
 * Suppression list, checked at RCPT by the policy daemon and before delivery by the engine: addresses
 * and domains Freight must not mail, from hard bounces, complaints and manual adds. Stored in the accounting database; each process keeps an in-memory copy
 * for O(1) checks and `refresh()` applies other processes' changes from the change log that triggers
 * maintain (cheap: one PRAGMA when nothing changed).
 */

import type { AcctStore } from '../acct/store.js';
import { FreightError } from '../common/errors.js';

export type SuppressionSource = 'bounce' | 'manual' | 'complaint';

export interface SuppressionEntry {
  /** Lower-case address, or bare domain for a domain entry. */
  key: string;
  kind: 'address' | 'domain';
  reason: string;
  source: SuppressionSource;
  createdAt: number;
  expiresAt: number | null;
}

export interface SuppressionInput {
  address?: string;
  domain?: string;
  reason: string;
  source: SuppressionSource;
  expiresAt?: number | null;
}

const SOURCES = new Set(['bounce', 'manual', 'complaint']);

/** Lower-cased, without surrounding space or angle brackets (no regex unless there are brackets). */
function normalizeAddress(address: string): string {
  let a = address.trim();
  if (a.startsWith('<') || a.endsWith('>')) a = a.replace(/^<|>$/g, '');
  return a.toLowerCase();
}

function normalizeKey(addrOrDomain: string): { key: string; kind: 'address' | 'domain' } {
  const k = normalizeAddress(addrOrDomain);
  if (k === '' || /\s/.test(k))
    throw new FreightError('SUPPRESS_BAD_KEY', `not an address or domain: "${addrOrDomain}"`);
  if (k.includes('@')) {
    const at = k.lastIndexOf('@');
    if (at === 0 || at === k.length - 1)
      throw new FreightError('SUPPRESS_BAD_KEY', `not an address: "${addrOrDomain}"`);
    return { key: k, kind: 'address' };
  }
  return { key: k.replace(/^\.+|\.+$/g, ''), kind: 'domain' };
}

/** `check` runs on every policy decision and delivery: no closure per call. */
function liveEntry(e: SuppressionEntry | undefined, now: number): SuppressionEntry | undefined {
  return e && (e.expiresAt === null || e.expiresAt > now) ? e : undefined;
}

export class SuppressionList {
  private readonly store: AcctStore;
  private readonly entries = new Map<string, SuppressionEntry>();
  private lastSeq = 0;
  private lastDataVersion = -1;

  private constructor(store: AcctStore) {
    this.store = store;
  }

  static open(store: AcctStore): SuppressionList {
    const list = new SuppressionList(store);
    list.reload();
    return list;
  }

  get size(): number {
    return this.entries.size;
  }

  add(e: SuppressionInput): SuppressionEntry {
    const target = e.address ?? e.domain;
    if (!target) throw new FreightError('SUPPRESS_BAD_KEY', 'suppression entry needs an address or a domain');
    if (!SOURCES.has(e.source)) throw new FreightError('SUPPRESS_BAD_SOURCE', `unknown source ${e.source}`);
    const { key, kind } = normalizeKey(target);
    if (e.domain && kind !== 'domain')
      throw new FreightError('SUPPRESS_BAD_KEY', `not a domain: "${e.domain}"`);
    if (e.address && kind !== 'address')
      throw new FreightError('SUPPRESS_BAD_KEY', `not an address: "${e.address}"`);
    const entry: SuppressionEntry = {
      key,
      kind,
      reason: e.reason,
      source: e.source,
      createdAt: Date.now(),
      expiresAt: e.expiresAt ?? null,
    };
    this.store.db
      .prepare(
        `INSERT INTO suppression (key, kind, reason, source, createdAt, expiresAt) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, reason = excluded.reason, source = excluded.source,
           createdAt = excluded.createdAt, expiresAt = excluded.expiresAt`,
      )
      .run(entry.key, entry.kind, entry.reason, entry.source, entry.createdAt, entry.expiresAt);
    this.entries.set(key, entry);
    return entry;
  }

  remove(addrOrDomain: string): boolean {
    const { key } = normalizeKey(addrOrDomain);
    const changed = this.store.db.prepare('DELETE FROM suppression WHERE key = ?').run(key).changes > 0;
    this.entries.delete(key);
    return changed;
  }

  /** In-memory: the entry suppressing this address (its own, or its domain's or a parent domain's). */
  check(address: string, now = Date.now()): SuppressionEntry | undefined {
    const a = normalizeAddress(address);
    const own = liveEntry(this.entries.get(a), now);
    if (own) return own;
    let domain = a.includes('@') ? a.slice(a.lastIndexOf('@') + 1) : a;
    while (domain) {
      const d = liveEntry(this.entries.get(domain), now);
      if (d && d.kind === 'domain') return d;
      const dot = domain.indexOf('.');
      domain = dot < 0 ? '' : domain.slice(dot + 1);
    }
    return undefined;
  }

  /** Apply changes other processes committed since the last call. Call from a timer. */
  refresh(): void {
    const db = this.store.db;
    const dv = db.pragma('data_version', { simple: true }) as number;
    if (dv === this.lastDataVersion) return;
    this.lastDataVersion = dv;
    const oldest = db.prepare('SELECT MIN(seq) AS s FROM suppression_log').get() as { s: number | null };
    // The log was pruned past our position: we cannot replay, so reload.
    if (oldest.s !== null && oldest.s > this.lastSeq + 1 && this.lastSeq > 0) {
      this.reload();
      return;
    }
    const changes = db
      .prepare('SELECT seq, key FROM suppression_log WHERE seq > ? ORDER BY seq')
      .all(this.lastSeq) as Array<{
      seq: number;
      key: string;
    }>;
    if (changes.length === 0) return;
    const get = db.prepare('SELECT * FROM suppression WHERE key = ?');
    for (const key of new Set(changes.map((c) => c.key))) {
      const row = get.get(key) as SuppressionEntry | undefined;
      if (row) this.entries.set(key, row);
      else this.entries.delete(key);
    }
    this.lastSeq = changes[changes.length - 1]!.seq;
  }

  list(
    opts: { source?: SuppressionSource; kind?: 'address' | 'domain'; limit?: number } = {},
  ): SuppressionEntry[] {
    const clauses: string[] = [];
    const params: unknown[] = [];
    if (opts.source) {
      clauses.push('source = ?');
      params.push(opts.source);
    }
    if (opts.kind) {
      clauses.push('kind = ?');
      params.push(opts.kind);
    }
    const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
    const limit = opts.limit && opts.limit > 0 ? ` LIMIT ${Math.floor(opts.limit)}` : '';
    return this.store.db
      .prepare(`SELECT * FROM suppression ${where} ORDER BY createdAt DESC, key${limit}`)
      .all(...params) as SuppressionEntry[];
  }

  private reload(): void {
    const db = this.store.db;
    db.transaction(() => {
      this.entries.clear();
      for (const row of db
        .prepare('SELECT * FROM suppression')
        .iterate() as IterableIterator<SuppressionEntry>) {
        this.entries.set(row.key, row);
      }
      const s = db.prepare('SELECT MAX(seq) AS s FROM suppression_log').get() as { s: number | null };
      this.lastSeq = s.s ?? 0;
    })();
    this.lastDataVersion = db.pragma('data_version', { simple: true }) as number;
  }
}
