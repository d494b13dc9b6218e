/**
 * The DSN path loses nothing and says what went wrong: an original that cannot be read is retried and
 * the DSN carries it once it can (after a bounded number of tries the DSN goes out without it, saying
 * so, never with an empty original); a failed outbox write is retried while the engine runs; an outbox
 * file that cannot be read or is not an outbox file is moved to dsn/corrupt/, never deleted. Each case
 * is logged and counted in the sender's status. A sink stands in for Postfix's smtpd.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { addr, testSubnet } from '../harness/ports.js';
import { type Sink, startSink } from '../harness/sink.js';
import type { Logger } from '../sidecar/common/log.js';
import { DsnSender } from '../sidecar/engine/dsn/sender.js';
import type { MessageDraft, SpoolEntry } from '../sidecar/engine/spool/entry.js';
import { Spool } from '../sidecar/engine/spool/spool.js';

const draft: MessageDraft = {
  sender: 'sender@app.test',
  envId: null,
  ret: null,
  jobId: null,
  vmtaRequest: null,
  postfixQueueId: null,
  messageId: '<orig@app.test>',
  sourceIp: '127.0.0.1',
  recipients: [{ rcpt: 'gone@isp.test', orcpt: null, notify: null }],
};
const body = Buffer.from(
  'From: a@app.test\r\nSubject: hello\r\nMessage-ID: <orig@app.test>\r\n\r\nbody line\r\n',
);

/** A logger that keeps warnings and errors for the test to read. */
function recordingLog(): Logger & { warnings: string[]; errors: string[] } {
  const warnings: string[] = [];
  const errors: string[] = [];
  const log = {
    warnings,
    errors,
    debug: () => undefined,
    info: () => undefined,
    warn: (m: string) => warnings.push(m),
    error: (m: string) => errors.push(m),
    child: () => log,
  };
  return log;
}

describe('engine DSN failures', () => {
  let dir: string;
  let sink: Sink;
  let n = 0;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-dsn-fail-'));
    sink = await startSink({ host: addr(testSubnet(), 26), port: 0, keepRaw: true });
  });
  after(async () => {
    await sink.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A spool that reads bodies from disk (no cache), a sender retrying every 20 ms at first. */
  async function world() {
    sink.reset();
    const spoolDir = path.join(dir, `s${++n}`);
    const spool = await Spool.open({ dir: spoolDir, bodyCacheBytes: 0 });
    const log = recordingLog();
    const make = () =>
      new DsnSender({
        spool,
        hostName: 'engine.test',
        postmaster: 'postmaster',
        postfixListener: { host: sink.host, port: sink.port },
        maxBody: 1024 * 1024,
        retryMs: 20,
        log,
      });
    return { spool, spoolDir, log, make, dsnDir: path.join(spoolDir, 'dsn') };
  }

  /** Bounce the only recipient of `msg` and report it, as an attempt's outcome does. */
  function bounce(spool: Spool, dsn: DsnSender, msg: SpoolEntry): void {
    const diag = 'smtp;550 5.1.1 no such user';
    spool.update([
      { messageId: msg.id, rcptIndex: 0, state: 'bounced', attempts: 1, nextAttemptAt: 0, lastDiag: diag },
    ]);
    dsn.bounced(msg, [{ index: 0, rcpt: 'gone@isp.test', status: '5.1.1', diag, mta: 'mx.isp.test' }]);
    spool.remove(msg);
  }

  const segFile = (spoolDir: string, msg: SpoolEntry) =>
    path.join(spoolDir, 'data', `seg-${String(msg.seg).padStart(8, '0')}.dat`);

  it('retries an original that cannot be read and sends the DSN with it once it can', async () => {
    const { spool, spoolDir, log, make } = await world();
    const dsn = make();
    const msg = await spool.accept(draft, body);
    const seg = segFile(spoolDir, msg);
    const saved = fs.readFileSync(seg);
    fs.truncateSync(seg, 0);
    bounce(spool, dsn, msg);
    await until(() => log.warnings.some((m) => /original cannot be read/.test(m)), 3000, 'a logged retry');
    assert.equal(sink.arrivals.length, 0, 'no DSN while the original cannot be read');
    assert.equal(dsn.status().retrying, 1);
    fs.writeFileSync(seg, saved);
    await sink.waitFor((s) => s.arrivals.length >= 1, 5000, 'the DSN');
    const text = sink.arrivals[0]!.raw!.toString('latin1');
    assert.match(text, /Content-Type: message\/rfc822\r\n\r\nFrom: a@app\.test\r\n/);
    assert.match(text, /\r\n\r\nbody line\r\n/);
    await until(() => spool.get(msg.id) === undefined, 2000, 'the original removed after its DSN');
    await until(() => dsn.status().sent === 1, 2000, 'Postfix took the DSN');
    const st = dsn.status();
    assert.ok(st.errors >= 1, `errors ${st.errors}`);
    assert.deepEqual([st.retrying, st.withoutOriginal, st.sent], [0, 0, 1]);
    dsn.close();
    await spool.close();
  });

  it('sends the DSN without the original, saying so, when the original never becomes readable', async () => {
    const { spool, spoolDir, log, make } = await world();
    const dsn = make();
    const msg = await spool.accept(draft, body);
    fs.truncateSync(segFile(spoolDir, msg), 0);
    bounce(spool, dsn, msg);
    await sink.waitFor((s) => s.arrivals.length >= 1, 5000, 'the DSN');
    const text = sink.arrivals[0]!.raw!.toString('latin1');
    assert.match(text, /The original message could not be read from the spool of this system,\r\n/);
    assert.match(text, /Its Message-ID was <orig@app\.test>\./);
    assert.match(text, /Status: 5\.1\.1\r\n/);
    assert.doesNotMatch(text, /message\/rfc822|text\/rfc822-headers/, 'no empty original part');
    assert.equal(log.warnings.filter((m) => /original cannot be read/.test(m)).length, 4, 'four retries');
    assert.ok(log.errors.some((m) => /without the original/.test(m)));
    assert.equal(dsn.status().withoutOriginal, 1);
    dsn.close();
    await spool.close();
  });

  it('retries a failed outbox write while running, then sends the DSN', async () => {
    const { spool, log, make, dsnDir } = await world();
    const dsn = make();
    const msg = await spool.accept(draft, body);
    // The outbox is not a directory for a while: every write fails (ENOTDIR).
    fs.rmSync(dsnDir, { recursive: true });
    fs.writeFileSync(dsnDir, 'in the way');
    bounce(spool, dsn, msg);
    await until(() => log.warnings.some((m) => /cannot be written to the outbox/.test(m)), 3000, 'a retry');
    assert.ok(spool.get(msg.id), 'the original is kept while its DSN is not spooled');
    assert.equal(dsn.status().retrying, 1);
    fs.rmSync(dsnDir);
    fs.mkdirSync(dsnDir);
    await sink.waitFor((s) => s.arrivals.length >= 1, 5000, 'the DSN after the retry');
    assert.deepEqual(sink.arrivals[0]!.rcptTo, ['sender@app.test']);
    await until(() => spool.get(msg.id) === undefined, 2000, 'the original removed after its DSN');
    assert.equal(dsn.status().retrying, 0);
    dsn.close();
    await spool.close();
  });

  it('moves a corrupt and an unreadable outbox file to dsn/corrupt/ and sends the rest', async () => {
    const { spool, log, make, dsnDir } = await world();
    fs.mkdirSync(dsnDir, { recursive: true });
    fs.writeFileSync(path.join(dsnDir, 'garbage.eml'), 'not an outbox file\r\n');
    // A directory where a file should be: every read fails (EISDIR).
    fs.mkdirSync(path.join(dsnDir, 'unreadable.eml'));
    fs.writeFileSync(
      path.join(dsnDir, 'good.eml'),
      'X-Freight-Envelope-To: s@app.test\r\nFrom: <postmaster@engine.test>\r\nSubject: x\r\n\r\nreport\r\n',
    );
    const dsn = make();
    dsn.kick();
    await sink.waitFor((s) => s.arrivals.length >= 1, 5000, 'the good DSN');
    const corrupt = path.join(dsnDir, 'corrupt');
    await until(() => dsn.status().corrupt === 2, 3000, 'both bad files moved aside');
    await until(() => dsn.status().sent === 1, 2000, 'Postfix took the good DSN');
    assert.deepEqual(fs.readdirSync(corrupt).sort(), ['garbage.eml', 'unreadable.eml']);
    assert.deepEqual(fs.readdirSync(dsnDir), ['corrupt']);
    assert.equal(log.errors.filter((m) => /moved aside/.test(m)).length, 2);
    assert.ok(log.warnings.some((m) => /outbox file cannot be read; will retry/.test(m)));
    assert.deepEqual([dsn.status().outbox, dsn.status().retrying, dsn.status().sent], [0, 0, 1]);
    dsn.close();
    await spool.close();
  });
});
