/**
 * The accounting writer when the store refuses: a row the database cannot take is quarantined and
 * the rest of its batch is written; a locked store keeps every row buffered under retry, reports the
 * backlog, and past its bound intake answers 452 4.3.1 (the client keeps the mail) until it drains.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { freePort } from '../harness/ports.js';
import { greet, SmtpClient, sendMessage, taggedMessage } from '../harness/smtp-load.js';
import type { AcctRecord } from '../sidecar/acct/record.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { AcctWriter } from '../sidecar/acct/writer.js';
import { loadConfig } from '../sidecar/config/load.js';
import { Intake } from '../sidecar/engine/intake/listener.js';
import { engineSettings } from '../sidecar/engine/settings.js';
import { Spool } from '../sidecar/engine/spool/spool.js';
import type { SchedulerPort } from '../sidecar/engine/types.js';

const T0 = Date.UTC(2026, 0, 1);

function row(rcpt: string, p: Partial<AcctRecord> = {}): AcctRecord {
  return { type: 'd', timeLogged: T0, path: 'engine', rcpt, ...p };
}

function count(store: AcctStore, sql: string): number {
  return store.db.prepare(sql).pluck().get() as number;
}

/** A second connection holding the write lock, as another process's long transaction would. */
function lockStore(file: string): { release(): void } {
  const other = new Database(file);
  other.exec('BEGIN IMMEDIATE');
  return {
    release() {
      other.exec('COMMIT');
      other.close();
    },
  };
}

describe('accounting writer under store failures', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-acct-writer-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('quarantines a row the database cannot bind and writes the rest of its batch', () => {
    const store = AcctStore.open(path.join(dir, 'q.db'));
    const w = new AcctWriter(store, { source: 'engine' });
    w.write(row('a@x.test'));
    w.write(row('b@x.test', { dsnDiag: { not: 'text' } as unknown as string }));
    w.write(row('c@x.test'));
    assert.equal(w.flush(), true);
    assert.equal(w.pending, 0);
    assert.deepEqual(store.db.prepare('SELECT rcpt FROM acct ORDER BY id').pluck().all(), [
      'a@x.test',
      'c@x.test',
    ]);
    const q = store.db.prepare('SELECT source, code, row FROM acct_quarantine').all() as {
      source: string;
      code: string;
      row: string;
    }[];
    assert.equal(q.length, 1);
    assert.equal(q[0]!.source, 'engine');
    assert.equal(q[0]!.code, 'ACCT_BAD_VALUE');
    assert.equal((JSON.parse(q[0]!.row) as AcctRecord).rcpt, 'b@x.test');
    assert.equal(w.status().quarantined, 1);
    w.close();
    store.close();
  });

  it('keeps rows under retry while the store is locked and writes each once when it frees', () => {
    const file = path.join(dir, 'lock.db');
    const store = AcctStore.open(file, { busyTimeoutMs: 20 });
    const w = new AcctWriter(store, { maxBacklog: 3 });
    const lock = lockStore(file);
    for (let i = 0; i < 4; i++) w.write(row(`r${i}@x.test`, { dedupeKey: `k${i}` }));
    assert.equal(w.flush(), false);
    const st = w.status();
    assert.equal(st.backlog, 4);
    assert.equal(st.retrying, true);
    assert.match(st.lastError ?? '', /locked|busy/i);
    assert.equal(w.backlogged, true);
    lock.release();
    assert.equal(w.flush(), true);
    assert.equal(w.backlogged, false);
    assert.equal(w.status().retrying, false);
    assert.equal(count(store, 'SELECT count(*) FROM acct'), 4);
    w.close();
    store.close();
  });

  it('bounds memory when the store stays down: rows from a log are let go and the cursor stays before them', () => {
    const file = path.join(dir, 'overflow.db');
    const store = AcctStore.open(file, { busyTimeoutMs: 20 });
    let logged = 0;
    const w = new AcctWriter(store, {
      maxBacklog: 2,
      checkpoint: { source: 'test-log', position: () => logged },
    });
    for (let i = 1; i <= 3; i++) w.write(row(`early${i}@x.test`, { dedupeKey: `e${i}` }));
    logged = 3;
    assert.equal(w.flush(), true);
    assert.equal(w.committedPosition, 3);
    const lock = lockStore(file);
    for (let i = 1; i <= 20; i++) {
      w.write(row(`late${i}@x.test`, { dedupeKey: `l${i}` }));
      logged++;
    }
    assert.equal(w.pending, 8, 'four times the backlog bound, no more');
    assert.equal(w.status().overflowed, true);
    lock.release();
    assert.equal(w.flush(), false, 'rows were let go: not everything is committed');
    assert.equal(w.pending, 0);
    assert.equal(
      w.committedPosition,
      3,
      'the cursor stays before the rows let go, so a restart replays them',
    );
    assert.equal(count(store, "SELECT seq FROM acct_cursor WHERE source = 'test-log'"), 3);
    w.close();
    store.close();
  });

  it('intake answers 452 4.3.1 while the accounting backlog is over its bound, 250 once it drained', async () => {
    const port = await freePort();
    const conf = path.join(dir, 'intake.conf');
    fs.writeFileSync(
      conf,
      [
        'host-name engine.test',
        `spool-dir ${dir}/spool`,
        `run-dir ${dir}/run`,
        `acct-db ${dir}/intake.db`,
        `smtp-listener 127.0.0.1:${port}`,
        'spool-min-free 0',
        '<source 127.0.0.1/32>',
        '  always-allow-relaying yes',
        '</source>',
        '',
      ].join('\n'),
    );
    const config = loadConfig(conf);
    const spool = await Spool.open({ dir: config.global.spoolDir });
    const store = AcctStore.open(config.global.acctDb, { busyTimeoutMs: 20 });
    const acct = new AcctWriter(store, { maxBacklog: 2, flushMs: 10 });
    const scheduler: SchedulerPort = { submit: () => {}, queuedRecipients: () => 0 };
    const intake = new Intake({ config, settings: engineSettings(config), spool, scheduler, acct });
    await intake.listen();
    const c = await SmtpClient.open('127.0.0.1', port);
    try {
      await greet(c, 'lmtp');
      const lock = lockStore(config.global.acctDb);
      const rcpts = ['a@x.test', 'b@x.test'];
      const first = await sendMessage(c, taggedMessage(1, 's@app.test', rcpts, 200), 'lmtp');
      assert.equal(first.outcome, 'accepted', first.reply);
      assert.equal(acct.flush(), false, 'the store is locked');
      const refused = await sendMessage(c, taggedMessage(2, 's@app.test', rcpts, 200), 'lmtp');
      assert.equal(refused.outcome, 'refused');
      assert.match(refused.reply, /^452 4\.3\.1 accounting backlog/);
      assert.equal(spool.messageCount, 1, 'the refused message was not spooled');
      lock.release();
      assert.equal(acct.flush(), true);
      const again = await sendMessage(c, taggedMessage(2, 's@app.test', rcpts, 200), 'lmtp');
      assert.equal(again.outcome, 'accepted', again.reply);
      acct.flush();
      assert.equal(count(store, "SELECT count(*) FROM acct WHERE type = 'r'"), 4);
    } finally {
      c.destroy();
      await intake.close(1000);
      await spool.close();
      acct.close();
      store.close();
    }
  });
});
