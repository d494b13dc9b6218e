/**
 * The tailer against a real Postfix: mail sent, deferred, bounced (hard: suppressed), expired, rejected at
 * RCPT (NOQUEUE) and handed off to the engine's listener; the rows must appear in SQLite with the facts
 * Postfix logged, and the hand-off must join the engine's rows in `acct trail`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { addr, freePort, testSubnet } from '../harness/ports.js';
import { startTestPostfix, type TestPostfix } from '../harness/postfix.js';
import { type Sink, startSink } from '../harness/sink.js';
import { trail } from '../sidecar/acct/query.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { AcctWriter } from '../sidecar/acct/writer.js';
import { Tailer } from '../sidecar/tailer/daemon.js';

const run = promisify(execFile);
type Row = Record<string, string | number | null>;

let pf: TestPostfix;
let tailer: Tailer;
const sinks: Sink[] = [];

async function send(from: string, to: string): Promise<void> {
  await run(
    'swaks',
    ['-s', pf.host, '-p', String(pf.port), '-f', from, '-t', to, '--h-Subject', 'tailer test'],
    {
      timeout: 30_000,
    },
  ).catch(() => undefined);
}

async function rowsFor(rcpt: string, type: string, timeoutMs = 40_000): Promise<Row[]> {
  const store = AcctStore.open(pf.config.global.acctDb, { readonly: true });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = store.db
        .prepare('SELECT * FROM acct WHERE rcpt = ? AND type = ? ORDER BY id')
        .all(rcpt, type) as Row[];
      if (rows.length > 0 || Date.now() > deadline) return rows;
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    store.close();
  }
}

before(async () => {
  const net = testSubnet();
  const ok = await startSink({ host: addr(net, 1), port: 0 });
  const hard = await startSink({
    host: addr(net, 2),
    port: 0,
    script: {
      rcptTo: [{ match: /.*/, code: 550, message: '5.1.1 <x>: Recipient address rejected: User unknown' }],
    },
  });
  const soft = await startSink({
    host: addr(net, 3),
    port: 0,
    script: { rcptTo: [{ match: /.*/, code: 452, message: '4.2.2 Mailbox full' }] },
  });
  sinks.push(ok, hard, soft);
  const enginePort = await freePort();
  pf = await startTestPostfix({
    globals: { 'smtp-listener': `127.0.0.1:${enginePort}` },
    transports: [
      `engine.test smtp:[127.0.0.1]:${enginePort}`,
      `ok.test smtp:[${ok.host}]:${ok.port}`,
      `hard.test smtp:[${hard.host}]:${hard.port}`,
      `soft.test smtp:[${soft.host}]:${soft.port}`,
    ],
    mainOverrides: {
      smtpd_recipient_restrictions:
        'check_recipient_access inline:{blocked.test=REJECT}, permit_mynetworks, reject',
      maximal_queue_lifetime: '12s',
      bounce_queue_lifetime: '12s',
    },
  });
  const engine = pf.config.global.smtpListener;
  const engineSink = await startSink({
    host: engine.host,
    port: engine.port,
    script: { dataReply: { code: 250, message: '2.0.0 Ok: queued as ENG0001' } },
  });
  sinks.push(engineSink);
  tailer = await Tailer.start(pf.config, { pollMs: 50 });
  await send('app@src.test', 'alice@ok.test');
  await send('app@src.test', 'gone@hard.test');
  await send('app@src.test', 'full@soft.test');
  await send('app@src.test', 'nobody@blocked.test');
  await send('app@src.test', 'bob@engine.test');
});

after(async () => {
  await tailer?.stop();
  await pf?.stop();
  for (const s of sinks) await s.close();
});

describe('tailer on a real Postfix', { timeout: 300_000 }, () => {
  it('writes a d row with envelope, Message-ID, size and relay', async () => {
    const [d] = await rowsFor('alice@ok.test', 'd');
    assert.ok(d, 'no delivered row');
    assert.equal(d.path, 'postfix');
    assert.equal(d.orig, 'app@src.test');
    assert.equal(d.dsnStatus, '2.0.0');
    assert.ok(typeof d.messageId === 'string' && d.messageId.length > 0);
    assert.ok(Number(d.dlvSize) > 0);
    assert.match(String(d.dsnMta), /\(127\.\d+\.\d+\.1\)$/);
    assert.equal(d.rcptDomain, 'ok.test');
  });

  it('writes a b row for a 5xx, classifies it and suppresses the address', async () => {
    const [b] = await rowsFor('gone@hard.test', 'b');
    assert.ok(b, 'no bounce row');
    assert.equal(b.dsnStatus, '5.1.1');
    assert.equal(b.bounceCat, 'bad-mailbox');
    const store = AcctStore.open(pf.config.global.acctDb, { readonly: true });
    const s = store.db.prepare('SELECT source FROM suppression WHERE key = ?').get('gone@hard.test') as
      | { source: string }
      | undefined;
    store.close();
    assert.equal(s?.source, 'bounce');
  });

  it('writes t rows for deferrals and a message-expired b row when the queue lifetime ends', async () => {
    const t = await rowsFor('full@soft.test', 't');
    assert.ok(t.length >= 1, 'no deferral row');
    assert.equal(t[0]!.dsnStatus, '4.2.2');
    const [b] = await rowsFor('full@soft.test', 'b', 120_000);
    assert.ok(b, 'no expiry row');
    assert.equal(b.bounceCat, 'message-expired');
    assert.equal(b.postfixQueueId, t[0]!.postfixQueueId);
  });

  it('writes an rj row for a NOQUEUE reject', async () => {
    const [rj] = await rowsFor('nobody@blocked.test', 'rj');
    assert.ok(rj, 'no reject row');
    assert.equal(rj.orig, 'app@src.test');
    assert.match(String(rj.dsnDiag), /^smtp;554 5\.7\.1 /);
  });

  it('records the hand-off to the engine so acct trail joins both halves', async () => {
    const [h] = await rowsFor('bob@engine.test', 'd');
    assert.ok(h, 'no hand-off row');
    assert.equal(h.queue, 'freight-engine');
    assert.match(String(h.dsnDiag), /queued as ENG0001/);
    // The engine's own row for the message carries the Postfix queue id and its Message-ID.
    const store = AcctStore.open(pf.config.global.acctDb);
    const w = new AcctWriter(store);
    w.write({
      type: 'd',
      timeLogged: Date.now(),
      rcpt: 'bob@engine.test',
      path: 'engine',
      postfixQueueId: String(h.postfixQueueId),
      messageId: String(h.messageId),
    });
    w.close();
    const rows = trail(store, String(h.postfixQueueId));
    store.close();
    assert.deepEqual(rows.map((r) => `${r.path}:${r.type}`).sort(), ['engine:d', 'handoff:d']);
  });
});
