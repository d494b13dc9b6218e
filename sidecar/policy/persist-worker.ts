/**
 * The policy daemon's disk side, in a worker thread: SQLite (better-sqlite3) is synchronous, and a slow
 * disk or another process holding the write lock must never stall a reply. The main thread posts counter
 * changes and rejection records; this thread writes them and reports whether the stores work.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { AcctRecord } from '../acct/record.js';
import { AcctStore } from '../acct/store.js';
import { AcctWriter } from '../acct/writer.js';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { decodeCounterBatch } from './counter-batch.js';
import type { KeySnapshot } from './key-counters.js';
import type { ToMain, ToWorker } from './persist.js';

const log = createLogger('policy/persist');
const { countersPath, acctDb } = workerData as { countersPath: string; acctDb: string };
const port = parentPort!;
const send = (msg: ToMain) => port.postMessage(msg);

const SCHEMA = `CREATE TABLE IF NOT EXISTS policy_counters (
  limitName TEXT NOT NULL,
  key TEXT NOT NULL,
  rejected INTEGER NOT NULL,
  lastRejectedAt INTEGER NOT NULL,
  windows TEXT NOT NULL,
  updatedAt INTEGER NOT NULL,
  PRIMARY KEY (limitName, key)
) WITHOUT ROWID`;

interface CounterDb {
  db: Database.Database;
  save: (upserts: KeySnapshot[], deletes: Array<{ limit: string; key: string }>) => void;
}

let counters: CounterDb | null = null;
/** Latest unsaved state per (limit, key): a newer snapshot of a key replaces an older one. */
const pendingUpserts = new Map<string, KeySnapshot>();
const pendingDeletes = new Map<string, { limit: string; key: string }>();
let acct: { store: AcctStore; writer: AcctWriter } | null = null;
const pendingRecords: AcctRecord[] = [];
const MAX_PENDING_RECORDS = 200_000;
let droppedRecords = 0;
let countersOk = false;

function openCounters(): void {
  try {
    const db = new Database(countersPath);
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(SCHEMA);
    const rows = db
      .prepare('SELECT limitName, key, rejected, lastRejectedAt, windows FROM policy_counters')
      .all() as Array<{
      limitName: string;
      key: string;
      rejected: number;
      lastRejectedAt: number;
      windows: string;
    }>;
    const upsert = db.prepare(
      `INSERT INTO policy_counters (limitName, key, rejected, lastRejectedAt, windows, updatedAt) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (limitName, key) DO UPDATE SET rejected = excluded.rejected, lastRejectedAt = excluded.lastRejectedAt,
       windows = excluded.windows, updatedAt = excluded.updatedAt`,
    );
    const del = db.prepare('DELETE FROM policy_counters WHERE limitName = ? AND key = ?');
    const save = db.transaction((ups: KeySnapshot[], dels: Array<{ limit: string; key: string }>) => {
      const at = Date.now();
      for (const s of ups)
        upsert.run(s.limit, s.key, s.rejected, s.lastRejectedAt, JSON.stringify(s.windows), at);
      for (const d of dels) del.run(d.limit, d.key);
    });
    counters = { db, save: (u, d) => save.immediate(u, d) };
    const snaps: KeySnapshot[] = rows.map((r) => ({
      limit: r.limitName,
      key: r.key,
      rejected: r.rejected,
      lastRejectedAt: r.lastRejectedAt,
      windows: JSON.parse(r.windows) as KeySnapshot['windows'],
    }));
    send({ type: 'restored', snapshots: snaps });
    setCountersOk(true);
  } catch (err) {
    counters = null;
    log.error('counter store unavailable', { path: countersPath, error: errorMessage(err) });
    setCountersOk(false);
  }
}

function setCountersOk(ok: boolean): void {
  if (ok === countersOk) return;
  countersOk = ok;
  send({ type: 'health', store: 'counters', ok });
}

function flushCounters(): void {
  if (!counters) return;
  if (pendingUpserts.size === 0 && pendingDeletes.size === 0) return;
  try {
    counters.save([...pendingUpserts.values()], [...pendingDeletes.values()]);
    pendingUpserts.clear();
    pendingDeletes.clear();
    setCountersOk(true);
  } catch (err) {
    log.warn('counters not saved; will retry', { keys: pendingUpserts.size, error: errorMessage(err) });
    setCountersOk(false);
  }
}

function openAcct(): void {
  try {
    const store = AcctStore.open(acctDb);
    acct = { store, writer: new AcctWriter(store) };
  } catch (err) {
    acct = null;
    log.error('accounting database unavailable; rejection records are kept in memory', {
      path: acctDb,
      error: errorMessage(err),
    });
  }
}

function writeRecords(): void {
  if (!acct) return;
  for (const rec of pendingRecords.splice(0)) {
    try {
      acct.writer.write(rec);
    } catch (err) {
      log.warn('rejection record refused', { error: errorMessage(err) });
    }
  }
}

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'changes': {
      const { upserts, deletes } = decodeCounterBatch(msg.batch);
      for (const s of upserts) {
        const id = `${s.limit}\0${s.key}`;
        pendingDeletes.delete(id);
        pendingUpserts.set(id, s);
      }
      for (const d of deletes) {
        const id = `${d.limit}\0${d.key}`;
        pendingUpserts.delete(id);
        pendingDeletes.set(id, d);
      }
      flushCounters();
      break;
    }
    case 'rejections': {
      const room = MAX_PENDING_RECORDS - pendingRecords.length;
      if (msg.records.length > room) droppedRecords += msg.records.length - Math.max(0, room);
      pendingRecords.push(...msg.records.slice(0, Math.max(0, room)));
      writeRecords();
      break;
    }
    case 'close':
      flushCounters();
      writeRecords();
      try {
        acct?.writer.close();
      } catch (err) {
        log.error('rejection records lost on close', { error: errorMessage(err) });
      }
      acct?.store.close();
      counters?.db.close();
      clearInterval(retry);
      send({ type: 'closed' });
      break;
  }
});

// Stores that failed to open are retried; the main thread keeps deciding from memory meanwhile.
const retry = setInterval(() => {
  if (!counters) openCounters();
  else flushCounters();
  if (!acct) openAcct();
  writeRecords();
  if (droppedRecords > 0) {
    log.warn('rejection records dropped: accounting database unavailable too long', {
      dropped: droppedRecords,
    });
    droppedRecords = 0;
  }
}, 2000);

openAcct();
openCounters();
send({ type: 'ready' });
