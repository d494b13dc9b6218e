/**
 * Failure DSNs: RFC 3464 multipart/report to the envelope sender with the null sender, sent by SMTP to
 * the Postfix listener (a sink stands in for Postfix's smtpd here), none for the null sender, and a
 * bounce journaled before a crash still gets its DSN after restart.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addr, testSubnet } from '../harness/ports.js';
import { type Sink, startSink } from '../harness/sink.js';
import { DsnSender } from '../sidecar/engine/dsn/sender.js';
import type { MessageDraft } from '../sidecar/engine/spool/entry.js';
import { Spool } from '../sidecar/engine/spool/spool.js';

const draft = (sender: string, rcpts: string[]): MessageDraft => ({
  sender,
  envId: 'ENV-42',
  ret: null,
  jobId: null,
  vmtaRequest: null,
  postfixQueueId: null,
  messageId: '<orig@app.test>',
  sourceIp: '127.0.0.1',
  recipients: rcpts.map((rcpt) => ({ rcpt, orcpt: `rfc822;${rcpt}`, notify: null })),
});

const body = Buffer.from(
  'From: a@app.test\r\nSubject: hello\r\nMessage-ID: <orig@app.test>\r\n\r\nbody line\r\n',
);

describe('engine DSN', () => {
  let dir: string;
  let sink: Sink;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-dsn-'));
    sink = await startSink({ host: addr(testSubnet(), 25), port: 0, keepRaw: true });
  });
  after(async () => {
    await sink.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const sender = (spool: Spool) =>
    new DsnSender({
      spool,
      hostName: 'engine.test',
      postmaster: 'postmaster',
      postfixListener: { host: sink.host, port: sink.port },
      maxBody: 1024 * 1024,
    });

  it('sends a multipart/report from <> to the sender, then removes the original', async () => {
    const spool = await Spool.open({ dir: path.join(dir, 's1') });
    const dsn = sender(spool);
    const msg = await spool.accept(draft('sender@app.test', ['gone@isp.test', 'ok@isp.test']), body);
    msg.recipients[0]!.state = 'bounced';
    spool.update([
      {
        messageId: msg.id,
        rcptIndex: 0,
        state: 'bounced',
        attempts: 1,
        nextAttemptAt: 0,
        lastDiag: 'smtp;550 5.1.1 no such user',
      },
    ]);
    dsn.bounced(msg, [
      {
        index: 0,
        rcpt: 'gone@isp.test',
        status: '5.1.1',
        diag: 'smtp;550 5.1.1 no such user',
        mta: 'mx.isp.test',
      },
    ]);
    spool.update([
      { messageId: msg.id, rcptIndex: 1, state: 'delivered', attempts: 1, nextAttemptAt: 0, lastDiag: null },
    ]);
    spool.remove(msg);
    assert.ok(spool.get(msg.id), 'original kept until the DSN is spooled');
    await sink.waitFor((s) => s.arrivals.length >= 1, 10_000, 'the DSN');
    const a = sink.arrivals[0]!;
    assert.equal(a.mailFrom, '');
    assert.deepEqual(a.rcptTo, ['sender@app.test']);
    assert.match(
      a.headers['content-type']![0]!,
      /^multipart\/report; report-type=delivery-status; boundary=/,
    );
    const text = a.raw!.toString('latin1');
    assert.match(text, /Content-Type: message\/delivery-status\r\n\r\nReporting-MTA: dns; engine\.test\r\n/);
    assert.match(text, /Original-Envelope-Id: ENV-42\r\n/);
    assert.match(
      text,
      /Final-Recipient: rfc822; gone@isp\.test\r\nOriginal-Recipient: rfc822; gone@isp\.test\r\nAction: failed\r\nStatus: 5\.1\.1\r\nRemote-MTA: dns; mx\.isp\.test\r\nDiagnostic-Code: smtp; 550 5\.1\.1 no such user\r\n/,
    );
    assert.doesNotMatch(text, /Final-Recipient: rfc822; ok@isp\.test/);
    assert.match(
      text,
      /Content-Type: message\/rfc822\r\n\r\nReceived|Content-Type: message\/rfc822\r\n\r\nFrom: a@app\.test/,
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(spool.get(msg.id), undefined);
    await assert.rejects(spool.readBody(msg), { code: 'SPOOL_READ' });
    assert.deepEqual(fs.readdirSync(path.join(dir, 's1', 'dsn')), []);
    dsn.close();
    await spool.close();
  });

  it('sends nothing for the null sender', async () => {
    sink.reset();
    const spool = await Spool.open({ dir: path.join(dir, 's2') });
    const dsn = sender(spool);
    const msg = await spool.accept(draft('', ['gone@isp.test']), body);
    dsn.bounced(msg, [
      { index: 0, rcpt: 'gone@isp.test', status: '5.1.1', diag: 'smtp;550 5.1.1 x', mta: null },
    ]);
    spool.remove(msg);
    assert.equal(spool.get(msg.id), undefined);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sink.arrivals.length, 0);
    dsn.close();
    await spool.close();
  });

  it('sends the DSN after a restart when the bounce was journaled but its DSN not spooled', async () => {
    sink.reset();
    const sdir = path.join(dir, 's3');
    const spool = await Spool.open({ dir: sdir });
    const msg = await spool.accept(draft('s@app.test', ['late@isp.test']), body);
    spool.update([
      {
        messageId: msg.id,
        rcptIndex: 0,
        state: 'bounced',
        attempts: 3,
        nextAttemptAt: 0,
        lastDiag: 'smtp;554 5.7.1 rejected',
      },
    ]);
    await spool.close(); // the crash: no DSN was built

    const again = await Spool.open({ dir: sdir });
    const dsn = sender(again);
    const queued = again.takeRecovered((e, idx) => dsn.owed(e, idx));
    assert.equal(queued.length, 0);
    await sink.waitFor((s) => s.arrivals.length >= 1, 10_000, 'the recovered DSN');
    assert.match(sink.arrivals[0]!.raw!.toString('latin1'), /Status: 5\.7\.1\r\n/);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(again.get(msg.id), undefined, 'final message removed after its DSN');
    dsn.close();
    await again.close();
  });
});
