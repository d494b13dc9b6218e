/**
 * The tailer's own tables in the accounting database: where it stands in the maillog (byte offset plus a
 * fingerprint of the file, so a replaced file is noticed) and the correlation state of queue files still
 * in flight. `commit` writes rows, their rollups, suppressions, state changes and the new position in ONE
 * transaction: after a SIGKILL the tailer resumes exactly after the last committed line, with the same
 * knowledge it had then — no line read twice, none skipped.
 *
 * A row the database refuses (a constraint, a bad value) is quarantined inside that same transaction and
 * the rest of the batch goes in, so one bad line never stops accounting. A failure of the store itself
 * (locked, full, I/O) throws and writes nothing: the caller keeps the batch and retries.
 */
import type Database from 'better-sqlite3';
import { AcctQuarantine, isRowError } from '../acct/quarantine.js';
import type { AcctRecord } from '../acct/record.js';
import { RollupBatch, rollupWriter } from '../acct/rollup.js';
import { ACCT_COLUMNS } from '../acct/schema.js';
import type { AcctStore } from '../acct/store.js';
import { validateRecord } from '../acct/writer.js';
import { FreightError } from '../common/errors.js';
import type { QueueState, SuppressRequest } from './rows.js';

/** A position in a log file that survives rename and copy: identity by content, not inode. */
export interface FilePosition {
  /** Bytes of the file's first line the fingerprint covers (0 = file was empty, no fingerprint yet). */
  fpLen: number;
  /** sha1 (hex) of those bytes. */
  fpHash: string;
  /** Byte offset just after the last line whose rows are committed. */
  offset: number;
  /** For operators only: inode and path when the position was written. */
  ino: number;
  path: string;
}

export interface CommitBatch {
  rows: AcctRecord[];
  suppress: SuppressRequest[];
  upserts: [string, QueueState][];
  deletes: string[];
  position: FilePosition | null;
}

export interface CommitResult {
  /** Rows inserted (a dedupe-key hit, a line committed before, inserts nothing). */
  inserted: number;
  /** Rows the database refused, now in acct_quarantine. */
  quarantined: number;
}

/**
 * A refused row that also rolled the whole transaction back (a trigger's RAISE(ROLLBACK)): the batch is
 * written again with that row quarantined up front.
 */
class RowRolledBack extends FreightError {
  constructor(
    readonly row: AcctRecord,
    readonly failure: unknown,
  ) {
    super('TAILER_ROW_ROLLED_BACK', 'a refused row rolled the transaction back', undefined, {
      cause: failure,
    });
  }
}

/** Adds a hard-bounced address to the suppression list (inside the commit's transaction). */
export type Suppressor = (req: SuppressRequest) => void;

const DDL = `
  CREATE TABLE IF NOT EXISTS tailer_position (
    name TEXT PRIMARY KEY, path TEXT NOT NULL, ino INTEGER NOT NULL,
    fpLen INTEGER NOT NULL, fpHash TEXT NOT NULL, offset INTEGER NOT NULL, updatedAt INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS tailer_queue (qid TEXT PRIMARY KEY, state TEXT NOT NULL);
`;

export class TailerStore {
  private readonly db: Database.Database;
  private readonly tx: (b: CommitBatch, refused: Map<AcctRecord, unknown>) => CommitResult;
  private readonly getPos: Database.Statement;

  constructor(
    store: AcctStore,
    private readonly name: string,
    suppressor: Suppressor | null,
    /** Who quarantined a refused row, in acct_quarantine.source. */
    source: 'tailer' | 'import' = 'tailer',
  ) {
    this.db = store.db;
    this.db.exec(DDL);
    this.getPos = this.db.prepare('SELECT * FROM tailer_position WHERE name = ?');
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO acct (${ACCT_COLUMNS.join(', ')}) VALUES (${ACCT_COLUMNS.map(() => '?').join(', ')})`,
    );
    const addRollups = rollupWriter(this.db);
    const putQueue = this.db.prepare('INSERT OR REPLACE INTO tailer_queue (qid, state) VALUES (?, ?)');
    const delQueue = this.db.prepare('DELETE FROM tailer_queue WHERE qid = ?');
    const putPos = this.db.prepare(
      `INSERT OR REPLACE INTO tailer_position (name, path, ino, fpLen, fpHash, offset, updatedAt)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    const quarantine = new AcctQuarantine(this.db);
    const values = new Array<unknown>(ACCT_COLUMNS.length);
    /** Insert one row: true if new, false if already there, null if refused (quarantined). */
    const insertOne = (rec: AcctRecord, refused: Map<AcctRecord, unknown>): boolean | null => {
      if (refused.has(rec)) {
        quarantine.add(source, rec, refused.get(rec));
        return null;
      }
      try {
        validateRecord(rec);
        const r = rec as unknown as Record<string, unknown>;
        for (let i = 0; i < ACCT_COLUMNS.length; i++) values[i] = r[ACCT_COLUMNS[i]!] ?? null;
        return insert.run(values).changes === 1;
      } catch (err) {
        if (!isRowError(err)) throw err;
        if (!this.db.inTransaction) throw new RowRolledBack(rec, err);
        quarantine.add(source, rec, err);
        return null;
      }
    };
    const tx = this.db.transaction((b: CommitBatch, refused: Map<AcctRecord, unknown>): CommitResult => {
      const rollup = new RollupBatch();
      const fresh = new Set<AcctRecord>();
      const result: CommitResult = { inserted: 0, quarantined: 0 };
      for (const rec of b.rows) {
        const ok = insertOne(rec, refused);
        if (ok === null) result.quarantined++;
        // A dedupe-key hit (the line was committed before) inserts nothing and rolls up nothing.
        else if (ok) {
          result.inserted++;
          rollup.add(rec);
          if (b.suppress.length > 0) fresh.add(rec);
        }
      }
      addRollups(rollup);
      if (suppressor) for (const s of b.suppress) if (fresh.has(s.row)) suppressor(s);
      for (const [qid, st] of b.upserts) putQueue.run(qid, JSON.stringify(st));
      for (const qid of b.deletes) delQueue.run(qid);
      const p = b.position;
      if (p) putPos.run(this.name, p.path, p.ino, p.fpLen, p.fpHash, p.offset, Date.now());
      return result;
    });
    this.tx = (b, refused) => tx.immediate(b, refused);
  }

  position(): FilePosition | null {
    const row = this.getPos.get(this.name) as FilePosition | undefined;
    return row
      ? { fpLen: row.fpLen, fpHash: row.fpHash, offset: row.offset, ino: row.ino, path: row.path }
      : null;
  }

  queueStates(): [string, QueueState][] {
    const rows = this.db.prepare('SELECT qid, state FROM tailer_queue').all() as {
      qid: string;
      state: string;
    }[];
    return rows.map((r) => [r.qid, JSON.parse(r.state) as QueueState]);
  }

  /** Write the batch in one transaction, refused rows quarantined. Throws when the store fails. */
  commit(b: CommitBatch): CommitResult {
    const refused = new Map<AcctRecord, unknown>();
    // Each pass that rolls back adds one row to `refused`, so this ends within rows + 1 passes.
    for (;;) {
      try {
        return this.tx(b, refused);
      } catch (err) {
        if (!(err instanceof RowRolledBack)) throw err;
        refused.set(err.row, err.failure);
      }
    }
  }
}
