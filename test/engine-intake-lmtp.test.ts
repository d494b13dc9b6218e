/**
 * Engine intake over real sockets: LMTP and SMTP on one port, per-recipient LMTP replies, header
 * processing, `r` accounting rows in SQLite, source ACL and back-pressure replies.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../harness/ports.js';
import { greet, SmtpClient, sendMessage, taggedMessage } from '../harness/smtp-load.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { AcctWriter } from '../sidecar/acct/writer.js';
import { loadConfig } from '../sidecar/config/load.js';
import { Intake } from '../sidecar/engine/intake/listener.js';
import { type EngineSettings, engineSettings } from '../sidecar/engine/settings.js';
import { Spool } from '../sidecar/engine/spool/spool.js';
import type { SchedulerPort, SpooledMessage } from '../sidecar/engine/types.js';

/** Stands in for the delivery half: records what intake hands over. */
class RecordingScheduler implements SchedulerPort {
  submitted: SpooledMessage[] = [];
  queued = 0;
  submit(msg: SpooledMessage): void {
    this.submitted.push(msg);
  }
  queuedRecipients(): number {
    return this.queued;
  }
}

describe('engine intake', () => {
  let dir: string;
  let port: number;
  let spool: Spool;
  let intake: Intake;
  let store: AcctStore;
  let acct: AcctWriter;
  const scheduler = new RecordingScheduler();
  let settings: EngineSettings;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-intake-'));
    port = await freePort();
    fs.writeFileSync(
      path.join(dir, 'freight.conf'),
      [
        'host-name engine.test',
        `spool-dir ${dir}/spool`,
        `run-dir ${dir}/run`,
        `acct-db ${dir}/acct.db`,
        `smtp-listener 127.0.0.1:${port}`,
        'spool-min-free 0',
        'max-queued-recipients 100',
        '<source 127.0.0.1/32>',
        '  always-allow-relaying yes',
        '  process-x-virtual-mta yes',
        '  jobid-header X-Campaign',
        '</source>',
        '<source 127.0.0.3/32>',
        '  always-allow-relaying yes',
        '</source>',
        '',
      ].join('\n'),
    );
    const config = loadConfig(path.join(dir, 'freight.conf'));
    settings = engineSettings(config);
    spool = await Spool.open({ dir: config.global.spoolDir });
    store = AcctStore.open(config.global.acctDb);
    acct = new AcctWriter(store, { flushMs: 10 });
    intake = new Intake({ config, settings, spool, scheduler, acct });
    await intake.listen();
  });

  after(async () => {
    await intake.close(1000);
    await spool.close();
    acct.close();
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers each LMTP recipient after spooling, strips control headers and writes r rows', async () => {
    const c = await SmtpClient.open('127.0.0.1', port);
    await greet(c, 'lmtp');
    const received =
      'Received: from app.test (unknown [127.0.0.1])\r\n\tby pf.test (Postfix) with ESMTP id 4XyZ12abCDz\r\n' +
      '\tfor <a@x.test>; Thu, 05 Mar 2026 06:26:05 +0000 (UTC)\r\n';
    const msg = taggedMessage(
      1,
      'sender@app.test',
      ['a@x.test', 'b@y.test'],
      500,
      'X-Virtual-MTA: Pool1\r\nX-Campaign: spring\r\n',
    );
    msg.data = Buffer.concat([Buffer.from(received), msg.data]);
    const r = await sendMessage(c, msg, 'lmtp');
    c.close();
    assert.equal(r.outcome, 'accepted');
    assert.equal(r.replies.length, 2);
    const id = /queued as (\S+)/.exec(r.replies[0]!.text)?.[1];
    assert.ok(id, r.replies[0]!.text);
    assert.match(r.replies[1]!.text, /^250 2\.0\.0 <b@y\.test>/);

    const m = scheduler.submitted.find((s) => s.id === id)!;
    assert.ok(m);
    assert.equal(m.vmtaRequest, 'pool1');
    assert.equal(m.jobId, 'spring');
    assert.equal(m.postfixQueueId, '4XyZ12abCDz');
    assert.equal(m.messageId, '<load-1@loadgen.test>');
    assert.deepEqual(
      m.recipients.map((x) => x.rcpt),
      ['a@x.test', 'b@y.test'],
    );
    // The bytes in the spool's data segment, not the in-memory copy kept for the first attempt.
    const e = spool.get(m.id)!;
    const segFile = path.join(spool.dir, 'data', `seg-${String(e.seg).padStart(8, '0')}.dat`);
    const onDisk = fs
      .readFileSync(segFile)
      .subarray(e.off, e.off + e.size)
      .toString('latin1');
    assert.equal(onDisk.length, m.size);
    assert.doesNotMatch(onDisk, /X-Virtual-MTA|X-Campaign/i);
    assert.match(
      onDisk,
      /^Received: from loadgen\.test \(\[127\.0\.0\.1\]\)\r\n\tby engine\.test \(Freight\) with LMTP id /,
    );
    assert.match(onDisk, /X-Load-Id: 1\r\n/);

    acct.flush();
    const rows = store.db
      .prepare(
        "SELECT rcpt, orig, path, messageId, postfixQueueId, jobId, vmta, srcType FROM acct WHERE type = 'r' ORDER BY rcpt",
      )
      .all() as Record<string, unknown>[];
    assert.deepEqual(rows, [
      {
        rcpt: 'a@x.test',
        orig: 'sender@app.test',
        path: 'engine',
        messageId: id,
        postfixQueueId: '4XyZ12abCDz',
        jobId: 'spring',
        vmta: 'pool1',
        srcType: 'lmtp',
      },
      {
        rcpt: 'b@y.test',
        orig: 'sender@app.test',
        path: 'engine',
        messageId: id,
        postfixQueueId: '4XyZ12abCDz',
        jobId: 'spring',
        vmta: 'pool1',
        srcType: 'lmtp',
      },
    ]);
  });

  it('speaks SMTP on the same port and keeps the null sender', async () => {
    const c = await SmtpClient.open('127.0.0.1', port);
    await greet(c, 'smtp');
    const r = await sendMessage(c, taggedMessage(2, '', ['c@z.test']), 'smtp');
    c.close();
    assert.equal(r.outcome, 'accepted');
    assert.match(r.reply, /^250 2\.0\.0 Ok: queued as \S+$/);
    const id = /queued as (\S+)/.exec(r.reply)![1];
    const m = scheduler.submitted.find((s) => s.id === id)!;
    assert.equal(m.sender, '');
    assert.equal(m.vmtaRequest, null);
  });

  it('does not honour X-Virtual-MTA from a source without process-x-virtual-mta', async () => {
    const c = await SmtpClient.open('127.0.0.1', port, 30_000, '127.0.0.3');
    await greet(c, 'smtp');
    const r = await sendMessage(
      c,
      taggedMessage(3, 's@a.test', ['d@z.test'], 200, 'X-Virtual-MTA: mta9\r\n'),
      'smtp',
    );
    c.close();
    assert.equal(r.outcome, 'accepted');
    const m = scheduler.submitted.find((s) => s.id === /queued as (\S+)/.exec(r.reply)![1])!;
    assert.equal(m.vmtaRequest, null);
  });

  it('refuses clients outside every relaying <source> with 5.7.1', async () => {
    const c = await SmtpClient.open('127.0.0.1', port, 30_000, '127.0.0.2');
    const banner = await c.read();
    c.destroy();
    assert.match(banner.text, /^554 5\.7\.1 /);
  });

  it('answers 452 4.3.1 at MAIL when the scheduler is saturated, and accepts again below the limit', async () => {
    scheduler.queued = 100;
    const c = await SmtpClient.open('127.0.0.1', port);
    await greet(c, 'lmtp');
    const before = scheduler.submitted.length;
    const r = await sendMessage(c, taggedMessage(4, 's@a.test', ['e@z.test']), 'lmtp');
    assert.equal(r.outcome, 'refused');
    assert.match(r.reply, /^452 4\.3\.1 engine saturated/);
    assert.equal(scheduler.submitted.length, before);
    scheduler.queued = 0;
    const r2 = await sendMessage(c, taggedMessage(5, 's@a.test', ['e@z.test']), 'lmtp');
    c.close();
    assert.equal(r2.outcome, 'accepted');
  });

  it('answers 452 4.3.1 when the spool disk has less than spool-min-free', async () => {
    const full = await Spool.open({ dir: path.join(dir, 'spool2'), minFreeBytes: Number.MAX_SAFE_INTEGER });
    const config = loadConfig(path.join(dir, 'freight.conf'));
    const port2 = await freePort();
    config.global.smtpListener = { host: '127.0.0.1', port: port2 };
    const second = new Intake({ config, settings, spool: full, scheduler, acct: null });
    await second.listen();
    try {
      const c = await SmtpClient.open('127.0.0.1', port2);
      await greet(c, 'smtp');
      const r = await sendMessage(c, taggedMessage(6, 's@a.test', ['f@z.test']), 'smtp');
      c.close();
      assert.equal(r.outcome, 'refused');
      assert.match(r.reply, /^452 4\.3\.1 spool disk nearly full/);
      assert.equal(full.messageCount, 0);
    } finally {
      await second.close(100);
      await full.close();
    }
  });
});
