/**
 * The tailer when the accounting database says no. A row the database refuses (a trigger's RAISE) is
 * quarantined with its reason and the rows around it are committed, and the quarantine shows in
 * `freight show status`, /metrics and `freight acct quarantine` (`acct import` does the same). A locked
 * database holds the batch: the offset stays, nothing more is read, stop() still returns, and once the
 * lock goes every line is written exactly once.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type EngineProc, runEngineCli, startEngine } from '../harness/engine-proc.js';
import { type FreightDaemon, runFreight, startFreight } from '../harness/freight.js';
import { httpCall } from '../harness/http.js';
import { until } from '../harness/index.js';
import type { AcctStore } from '../sidecar/acct/store.js';
import type { Logger } from '../sidecar/common/log.js';
import { Tailer } from '../sidecar/tailer/daemon.js';
import { importLogs } from '../sidecar/tailer/import.js';
import { type TailerWorld, tailerWorld } from './tailer-harness.js';

const count = (store: AcctStore, sql: string, ...args: unknown[]) =>
  (store.db.prepare(sql).get(...args) as { n: number }).n;

/** A logger that counts the tailer's "commit failed" warnings: the moments it holds a refused batch. */
function recorder(): { log: Logger; count: () => number } {
  let n = 0;
  const log: Logger = {
    debug: () => undefined,
    info: () => undefined,
    warn: (msg) => {
      if (msg.startsWith('accounting commit failed')) n++;
    },
    error: () => undefined,
    child: () => log,
  };
  return { log, count: () => n };
}

const offset = (store: AcctStore) =>
  (store.db.prepare("SELECT offset FROM tailer_position WHERE name = 'maillog'").get() as { offset: number })
    .offset;

describe('a row the database refuses', () => {
  let w: TailerWorld;
  let store: AcctStore;

  before(async () => {
    w = await tailerWorld();
    store = w.open();
    store.db.exec(`
      CREATE TRIGGER poison BEFORE INSERT ON acct WHEN NEW.rcpt = 'poison@bad.test'
      BEGIN SELECT RAISE(ABORT, 'poisoned row refused'); END;
      CREATE TRIGGER poison_rollback BEFORE INSERT ON acct WHEN NEW.rcpt = 'rollback@bad.test'
      BEGIN SELECT RAISE(ROLLBACK, 'row that rolls the transaction back'); END;
    `);
  });

  after(() => {
    store.close();
    w.close();
  });

  it('is quarantined with its reason and the rows before and after it are committed', async () => {
    const tailer = await Tailer.start(w.config, { pollMs: 20, commitMs: 20 });
    try {
      w.deliver([
        'before@ok.test',
        'poison@bad.test',
        'between@ok.test',
        'rollback@bad.test',
        'after@ok.test',
      ]);
      await until(
        () => count(store, "SELECT count(*) n FROM acct WHERE rcpt LIKE '%@ok.test'") === 3,
        10_000,
        'rows around the refused ones',
      );
      w.deliver(['later@ok.test']);
      await until(
        () => count(store, "SELECT count(*) n FROM acct WHERE rcpt = 'later@ok.test'") === 1,
        10_000,
        'a later line',
      );
    } finally {
      await tailer.stop();
    }
    assert.equal(count(store, "SELECT count(*) n FROM acct WHERE rcpt LIKE '%@bad.test'"), 0);
    assert.equal(
      count(store, 'SELECT coalesce(sum(n), 0) n FROM acct_hourly'),
      4,
      'refused rows are not rolled up',
    );
    assert.equal(offset(store), statSync(w.maillog).size, 'the offset moved past the refused lines');
    const q = store.db
      .prepare('SELECT source, code, reason, row FROM acct_quarantine ORDER BY id')
      .all() as Array<{
      source: string;
      code: string;
      reason: string;
      row: string;
    }>;
    assert.deepEqual(
      q.map((r) => [r.source, r.code, r.reason, (JSON.parse(r.row) as { rcpt: string }).rcpt]),
      [
        ['tailer', 'SQLITE_CONSTRAINT_TRIGGER', 'poisoned row refused', 'poison@bad.test'],
        ['tailer', 'SQLITE_CONSTRAINT_TRIGGER', 'row that rolls the transaction back', 'rollback@bad.test'],
      ],
    );
  });

  it('is counted in freight show status, /metrics and freight acct quarantine', {
    timeout: 90_000,
  }, async () => {
    let engine: EngineProc | null = null;
    let api: FreightDaemon | null = null;
    try {
      engine = startEngine(w.confPath);
      api = startFreight(['api', '--config', w.confPath]);
      await engine.waitFor(/engine started/, 60_000);
      await api.waitFor(/listening on http:/, 60_000);

      const status = await runEngineCli(['show', 'status', '--config', w.confPath]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^acct quarantine\s+2 rows$/m);
      const json = await runEngineCli(['show', 'status', '--json', '--config', w.confPath]);
      assert.equal(
        (JSON.parse(json.stdout) as { acctDb: { quarantinedRows: number } }).acctDb.quarantinedRows,
        2,
      );

      const metrics = await httpCall(w.config.global.httpMgmtListener, 'GET', '/metrics');
      assert.equal(metrics.status, 200, metrics.text);
      assert.match(metrics.text, /^freight_acct_quarantined_rows 2$/m);

      const list = await runFreight(['acct', 'quarantine', '--config', w.confPath]);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^acct quarantine: 2 rows$/m);
      assert.match(list.stdout, /tailer\s+SQLITE_CONSTRAINT_TRIGGER\s+poisoned row refused/);
      const one = await runFreight(['acct', 'quarantine', '--limit', '1', '--json', '--config', w.confPath]);
      const parsed = JSON.parse(one.stdout) as { total: number; rows: Array<{ row: string }> };
      assert.equal(parsed.total, 2);
      assert.equal(parsed.rows.length, 1);
      assert.match(parsed.rows[0]!.row, /rollback@bad\.test/, 'newest first');
    } finally {
      await api?.stop();
      await engine?.kill('SIGTERM');
    }
  });
});

describe('acct import of a line the database refuses', () => {
  it('quarantines that row as the import’s, imports the rest and counts both', async () => {
    const w = await tailerWorld();
    const store = w.open();
    try {
      store.db.exec(`CREATE TRIGGER poison BEFORE INSERT ON acct WHEN NEW.rcpt = 'poison@bad.test'
        BEGIN SELECT RAISE(ABORT, 'poisoned row refused'); END;`);
      w.deliver(['one@ok.test', 'poison@bad.test', 'two@ok.test']);
      const r = await importLogs(store, [w.maillog], { timeZone: 'UTC', engine: null });
      assert.deepEqual([r.inserted, r.quarantined], [2, 1]);
      assert.equal(count(store, "SELECT count(*) n FROM acct WHERE rcpt LIKE '%@ok.test'"), 2);
      assert.equal(count(store, "SELECT count(*) n FROM acct_quarantine WHERE source = 'import'"), 1);
    } finally {
      store.close();
      w.close();
    }
  });
});

describe('a locked database', () => {
  let w: TailerWorld;
  let store: AcctStore;

  before(async () => {
    w = await tailerWorld();
    store = w.open();
    // Without the dedupe index a line committed twice would show as a second row instead of vanishing.
    store.db.exec('DROP INDEX acct_dedupe');
  });

  after(() => {
    store.close();
    w.close();
  });

  const rows = () => count(store, 'SELECT count(*) n FROM acct');
  const distinct = () => count(store, 'SELECT count(DISTINCT rcpt) n FROM acct');
  const rcpts = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag}-${i}@ok.test`);

  it('holds the batch and the offset, reads nothing more, and writes every line once when released', async () => {
    const refusals = recorder();
    const opts = { pollMs: 20, commitMs: 20, busyTimeoutMs: 100, log: refusals.log };
    let tailer = await Tailer.start(w.config, opts);
    const lock = w.open();
    try {
      w.deliver(rcpts('first', 1));
      await until(() => rows() === 1, 10_000, 'the first row');
      const committed = offset(store);

      lock.db.exec('BEGIN IMMEDIATE');
      w.deliver(rcpts('locked', 10));
      await until(() => refusals.count() > 0, 10_000, 'a refused commit');
      const linesRead = tailer.stats.lines;
      w.deliver(rcpts('behind', 2000));
      await sleep(600);
      assert.equal(tailer.stats.lines, linesRead, 'nothing more is read while a batch waits');
      assert.equal(offset(lock), committed, 'the offset does not move while the database is locked');
      assert.equal(count(lock, 'SELECT count(*) n FROM acct'), 1);
      lock.db.exec('COMMIT');
      await until(() => rows() === 2011, 15_000, 'every line once the lock is released');
      assert.equal(offset(store), statSync(w.maillog).size);

      // Stopping while locked: returns, commits nothing, and the next start reads those lines again.
      lock.db.exec('BEGIN IMMEDIATE');
      const before = refusals.count();
      w.deliver(rcpts('at-stop', 5));
      await until(() => refusals.count() > before, 10_000, 'a refused commit before stopping');
      const t0 = Date.now();
      await tailer.stop();
      assert.ok(
        Date.now() - t0 < 2000,
        `stop() returned in ${Date.now() - t0} ms though the database is locked`,
      );
      lock.db.exec('COMMIT');
      assert.equal(rows(), 2011);
      tailer = await Tailer.start(w.config, opts);
      await until(() => rows() === 2016, 10_000, 'the lines that were pending at stop');
      assert.equal(distinct(), 2016, 'no line written twice');
      assert.equal(offset(store), statSync(w.maillog).size);
    } finally {
      if (lock.db.inTransaction) lock.db.exec('ROLLBACK');
      lock.close();
      await tailer.stop();
    }
  });
});
