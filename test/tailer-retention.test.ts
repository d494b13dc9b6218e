/**
 * `acct-retention` is enforced by the running tailer on `acct-prune-schedule`: rows, rollups and
 * quarantined rows older than the retention go, expired suppressions and day-old change-log entries go,
 * newer rows stay, and the hourly rollups still add up to the raw rows left. A reload changes the
 * schedule; an invalid one is refused at start and at reload.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import type { AcctRecord } from '../sidecar/acct/record.js';
import type { AcctStore } from '../sidecar/acct/store.js';
import { AcctWriter } from '../sidecar/acct/writer.js';
import { isFreightError } from '../sidecar/common/errors.js';
import { loadConfig } from '../sidecar/config/load.js';
import { Tailer } from '../sidecar/tailer/daemon.js';
import { type TailerWorld, tailerWorld } from './tailer-harness.js';

const H = 3_600_000;
const DAY = 24 * H;

const count = (store: AcctStore, sql: string) => (store.db.prepare(sql).get() as { n: number }).n;

function rec(p: Partial<AcctRecord>): AcctRecord {
  return { type: 'd', timeLogged: Date.now(), path: 'engine', rcpt: 'a@gmail.com', vmta: 'mta1', ...p };
}

describe('scheduled retention in the tailer', () => {
  let w: TailerWorld;
  let store: AcctStore;

  before(async () => {
    // Every second, so the test sees the schedule fire; a 30-day retention.
    w = await tailerWorld(['acct-retention 30d', 'acct-prune-schedule "* * * * * *"']);
    store = w.open();
  });

  after(() => {
    store.close();
    w.close();
  });

  it('deletes what is older than acct-retention when the schedule fires and keeps the rest', async () => {
    const now = Date.now();
    const wr = new AcctWriter(store);
    for (let i = 0; i < 300; i++)
      wr.write(rec({ timeLogged: now - 40 * DAY - i * 60_000, rcpt: `old${i}@x.test` }));
    for (let i = 0; i < 200; i++) {
      wr.write(
        rec({
          type: i % 2 ? 'd' : 't',
          dsnDiag: 'smtp;421 4.7.0 try later',
          timeLogged: now - 29 * DAY - i * 7 * 60_000,
          rcpt: `new${i}@x.test`,
        }),
      );
    }
    wr.close();
    store.db
      .prepare(
        "INSERT INTO acct_quarantine (at, source, code, reason, row) VALUES (?, 'tailer', 'X', 'old', '{}')",
      )
      .run(now - 40 * DAY);
    store.db
      .prepare(
        "INSERT INTO suppression (key, kind, reason, source, createdAt, expiresAt) VALUES ('gone@x.test', 'address', 'r', 'manual', ?, ?)",
      )
      .run(now - 2 * DAY, now - DAY);
    store.db.prepare("INSERT INTO suppression_log (key, at) VALUES ('stale@x.test', ?)").run(now - 2 * DAY);

    const tailer = await Tailer.start(w.config, { pollMs: 20 });
    try {
      await until(
        () => count(store, "SELECT count(*) n FROM acct WHERE rcpt LIKE 'old%'") === 0,
        10_000,
        'the scheduled prune',
      );
      await until(
        () => count(store, "SELECT count(*) n FROM suppression_log WHERE key = 'stale@x.test'") === 0,
        5000,
        'the rest of the prune',
      );
    } finally {
      await tailer.stop();
    }
    assert.equal(count(store, "SELECT count(*) n FROM acct WHERE rcpt LIKE 'new%'"), 200, 'newer rows stay');
    assert.equal(count(store, 'SELECT count(*) n FROM acct_quarantine'), 0);
    assert.equal(count(store, "SELECT count(*) n FROM suppression WHERE key = 'gone@x.test'"), 0);
    // Rollups and raw rows agree hour by hour, and no rollup is left for a pruned hour.
    const mismatched = store.db
      .prepare(
        `SELECT h.hour, h.n, (SELECT count(*) FROM acct WHERE timeLogged / 3600000 * 3600000 = h.hour) AS raw
         FROM (SELECT hour, sum(n) AS n FROM acct_hourly GROUP BY hour) h WHERE h.n != raw`,
      )
      .all();
    assert.deepEqual(mismatched, []);
    assert.equal(count(store, 'SELECT coalesce(sum(n), 0) n FROM acct_hourly'), 200);
    assert.equal(
      count(store, 'SELECT coalesce(sum(n), 0) n FROM acct_diag_hourly'),
      100,
      'deferral diagnostics of the kept rows',
    );
  });

  it('refuses to start with an invalid acct-prune-schedule', async () => {
    const bad = await tailerWorld(['acct-prune-schedule "every hour"']);
    try {
      await assert.rejects(Tailer.start(loadConfig(bad.confPath)), (err) =>
        isFreightError(err, 'TAILER_BAD_SCHEDULE'),
      );
    } finally {
      bad.close();
    }
  });

  it('follows a reload: a new schedule applies, an invalid one is refused and the old one kept', async () => {
    const hourly = await tailerWorld(['acct-retention 30d']);
    const db = hourly.open();
    const tailer = await Tailer.start(hourly.config);
    try {
      const seed = (rcpt: string) => {
        const wr = new AcctWriter(db);
        wr.write(rec({ timeLogged: Date.now() - 40 * DAY, rcpt }));
        wr.close();
      };
      const old = (rcpt: string) => count(db, `SELECT count(*) n FROM acct WHERE rcpt = '${rcpt}'`);
      seed('before-reload@x.test');
      const original = readFileSync(hourly.confPath, 'utf8');
      appendFileSync(hourly.confPath, 'acct-prune-schedule "* * * * * *"\n');
      tailer.reload(loadConfig(hourly.confPath));
      await until(() => old('before-reload@x.test') === 0, 10_000, 'the prune on the reloaded schedule');

      writeFileSync(hourly.confPath, `${original}acct-prune-schedule "every second"\n`);
      assert.throws(
        () => tailer.reload(loadConfig(hourly.confPath)),
        (err) => isFreightError(err, 'TAILER_BAD_SCHEDULE'),
      );
      seed('after-bad-reload@x.test');
      await until(() => old('after-bad-reload@x.test') === 0, 10_000, 'the prune on the schedule kept');
    } finally {
      await tailer.stop();
      db.close();
      hourly.close();
    }
  });
});
