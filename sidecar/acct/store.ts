/**
 * The accounting database handle: one SQLite file in WAL mode shared by the engine, tailer,
 * policy daemon and CLI. Opening runs pending migrations; busy_timeout lets processes queue for the
 * single write lock instead of failing.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { FreightError } from '../common/errors.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';

export interface AcctStoreOptions {
  /** Open for reading only (CLI queries); the file must exist and be migrated. */
  readonly?: boolean;
  /** How long a statement waits for another process's write lock, ms (default 10 s). */
  busyTimeoutMs?: number;
}

export class AcctStore {
  readonly db: Database.Database;
  readonly path: string;
  readonly readonly: boolean;

  private constructor(db: Database.Database, path: string, readonly: boolean) {
    this.db = db;
    this.path = path;
    this.readonly = readonly;
  }

  static open(dbPath: string, opts: AcctStoreOptions = {}): AcctStore {
    const readonly = opts.readonly === true;
    if (readonly && dbPath !== ':memory:' && !existsSync(dbPath)) {
      throw new FreightError('ACCT_UNAVAILABLE', `no accounting database at ${dbPath}`, { path: dbPath });
    }
    if (!readonly && dbPath !== ':memory:') mkdirSync(dirname(dbPath), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(dbPath, { readonly, fileMustExist: readonly });
    } catch (err) {
      throw new FreightError(
        'ACCT_UNAVAILABLE',
        `cannot open accounting database ${dbPath}: ${String(err)}`,
        {
          path: dbPath,
        },
      );
    }
    try {
      db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 10_000}`);
      if (!readonly) {
        db.pragma('journal_mode = WAL');
        // NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the last commits.
        db.pragma('synchronous = NORMAL');
        migrate(db);
      } else {
        const version = db.pragma('user_version', { simple: true }) as number;
        if (version < SCHEMA_VERSION) {
          throw new FreightError(
            'ACCT_SCHEMA_OLD',
            `accounting database ${dbPath} has schema ${version}, need ${SCHEMA_VERSION}; open it read-write once (any daemon does)`,
          );
        }
      }
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new FreightError(
          'ACCT_SCHEMA_NEWER',
          `accounting database ${dbPath} has schema ${version}, newer than this freight (${SCHEMA_VERSION})`,
        );
      }
    } catch (err) {
      db.close();
      throw err;
    }
    return new AcctStore(db, dbPath, readonly);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function migrate(db: Database.Database): void {
  const current = () => db.pragma('user_version', { simple: true }) as number;
  if (current() >= SCHEMA_VERSION) return;
  // IMMEDIATE takes the write lock first, so two processes opening a fresh file cannot both migrate.
  db.transaction(() => {
    for (let v = current(); v < SCHEMA_VERSION; v++) {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }
  }).immediate();
}
