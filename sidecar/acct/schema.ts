/**
 * Versioned schema of the accounting database. Each migration runs once, in order, inside
 * one IMMEDIATE transaction; `PRAGMA user_version` records how far a database has come. Never edit a
 * shipped migration — append a new one.
 */

/** PowerMTA's accounting fields, in the order of its CSV export. */
export const PMTA_CSV_COLUMNS = [
  'type',
  'timeLogged',
  'timeQueued',
  'orig',
  'rcpt',
  'orcpt',
  'dsnAction',
  'dsnStatus',
  'dsnDiag',
  'dsnMta',
  'bounceCat',
  'srcType',
  'srcMta',
  'dlvType',
  'dlvSourceIp',
  'dlvDestinationIp',
  'dlvEsmtpAvailable',
  'dlvSize',
  'vmta',
  'jobId',
  'envId',
  'queue',
  'vmtaPool',
] as const;

/** Columns of `acct`: PowerMTA's, then Freight's own; the writer and export use this list. */
export const ACCT_COLUMNS = [
  ...PMTA_CSV_COLUMNS,
  'path',
  'postfixQueueId',
  'messageId',
  'rcptDomain',
  'attempt',
  'dedupeKey',
] as const;

export type AcctColumn = (typeof ACCT_COLUMNS)[number];

export const MIGRATIONS: readonly string[] = [
  // 1: raw events, hourly rollups for summaries, suppression list with a change log for cheap refresh.
  `
  CREATE TABLE acct (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    timeLogged INTEGER NOT NULL,
    timeQueued INTEGER,
    orig TEXT, rcpt TEXT, orcpt TEXT,
    dsnAction TEXT, dsnStatus TEXT, dsnDiag TEXT, dsnMta TEXT,
    bounceCat TEXT,
    srcType TEXT, srcMta TEXT,
    dlvType TEXT, dlvSourceIp TEXT, dlvDestinationIp TEXT, dlvEsmtpAvailable TEXT, dlvSize INTEGER,
    vmta TEXT, jobId TEXT, envId TEXT, queue TEXT, vmtaPool TEXT,
    path TEXT NOT NULL,
    postfixQueueId TEXT, messageId TEXT, rcptDomain TEXT, attempt INTEGER,
    dedupeKey TEXT
  );
  CREATE INDEX acct_time ON acct(timeLogged);
  CREATE INDEX acct_rcpt ON acct(rcpt, timeLogged);
  CREATE INDEX acct_domain_time ON acct(rcptDomain, timeLogged);
  CREATE INDEX acct_message ON acct(messageId) WHERE messageId IS NOT NULL;
  CREATE INDEX acct_queue_id ON acct(postfixQueueId) WHERE postfixQueueId IS NOT NULL;
  CREATE INDEX acct_job ON acct(jobId, timeLogged) WHERE jobId IS NOT NULL;
  CREATE UNIQUE INDEX acct_dedupe ON acct(dedupeKey) WHERE dedupeKey IS NOT NULL;

  -- Group columns hold '' rather than NULL so the primary key makes one row per group.
  CREATE TABLE acct_hourly (
    hour INTEGER NOT NULL,
    type TEXT NOT NULL, rcptDomain TEXT NOT NULL, vmta TEXT NOT NULL, bounceCat TEXT NOT NULL,
    path TEXT NOT NULL, jobId TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, type, rcptDomain, vmta, bounceCat, path, jobId)
  ) WITHOUT ROWID;

  -- Deferral/bounce diagnostics with variable parts (IPs, ids, addresses) masked, per hour and group.
  CREATE TABLE acct_diag_hourly (
    hour INTEGER NOT NULL,
    type TEXT NOT NULL, rcptDomain TEXT NOT NULL, vmta TEXT NOT NULL, bounceCat TEXT NOT NULL,
    path TEXT NOT NULL, jobId TEXT NOT NULL, diag TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, type, rcptDomain, vmta, bounceCat, path, jobId, diag)
  ) WITHOUT ROWID;

  CREATE TABLE suppression (
    key TEXT PRIMARY KEY,            -- lower-case address, or bare domain for a domain entry
    kind TEXT NOT NULL,              -- 'address' | 'domain'
    reason TEXT NOT NULL,
    source TEXT NOT NULL,            -- 'bounce' | 'manual' | 'complaint'
    createdAt INTEGER NOT NULL,
    expiresAt INTEGER
  );
  CREATE TABLE suppression_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE TRIGGER suppression_ins AFTER INSERT ON suppression BEGIN
    INSERT INTO suppression_log(key, at) VALUES (NEW.key, CAST(unixepoch('subsec') * 1000 AS INTEGER));
  END;
  CREATE TRIGGER suppression_upd AFTER UPDATE ON suppression BEGIN
    INSERT INTO suppression_log(key, at) VALUES (NEW.key, CAST(unixepoch('subsec') * 1000 AS INTEGER));
  END;
  CREATE TRIGGER suppression_del AFTER DELETE ON suppression BEGIN
    INSERT INTO suppression_log(key, at) VALUES (OLD.key, CAST(unixepoch('subsec') * 1000 AS INTEGER));
  END;
  `,
  // 2: rows that could not be written (a constraint, a bad value), kept with the reason instead of
  // blocking every row behind them; an operator reads, fixes or drops them.
  `
  CREATE TABLE acct_quarantine (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,            -- 'engine' | 'tailer' | 'policy' | 'import' …: who tried to write it
    code TEXT NOT NULL,              -- stable error code (SQLITE_CONSTRAINT_NOTNULL, ACCT_BAD_RECORD …)
    reason TEXT NOT NULL,
    row TEXT NOT NULL                -- the record as JSON, exactly as it was handed to the writer
  );
  CREATE INDEX acct_quarantine_at ON acct_quarantine(at);
  `,
  // 3: how far a writer's rows are committed in the log it derives them from (the engine's spool
  // journal), written in the same transaction as the rows, so a restart replays exactly what is missing.
  `
  CREATE TABLE acct_cursor (
    source TEXT PRIMARY KEY,         -- 'engine' …: whose log
    seq INTEGER NOT NULL             -- log records numbered up to this have their rows committed
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
