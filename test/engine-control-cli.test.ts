/**
 * Steering a running engine (a real child process) through its control socket with the CLI commands:
 * pause holds a queue's mail, show reports it, resume releases it, schedule answers; show status counts
 * a corrupt DSN outbox file left from before the start (moved to dsn/corrupt/); SIGHUP with a broken
 * config keeps the engine running; with the engine stopped the commands fail clearly.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDns } from '../harness/dns.js';
import { type EngineProc, runEngineCli, startEngine } from '../harness/engine-proc.js';
import { addr, freePort, testSubnet } from '../harness/ports.js';
import { type Sink, startSink } from '../harness/sink.js';
import { greet, SmtpClient, sendMessage, taggedMessage } from '../harness/smtp-load.js';
import type { EngineStatusReport, QueueInfo } from '../sidecar/engine/control/protocol.js';

describe('engine control channel and CLI', () => {
  let dir: string;
  let dns: TestDns;
  let sink: Sink;
  let port: number;
  let conf: string;
  let confText: string;
  let engine: EngineProc;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-ctl-'));
    const net = testSubnet();
    dns = await startDnsServer({ host: addr(net, 1) });
    sink = await startSink({ host: addr(net, 20), port: 0 });
    dns.mx('ctl.test', [{ exchange: 'mx.ctl.test', priority: 10 }]);
    dns.a('mx.ctl.test', [addr(net, 20)]);
    port = await freePort();
    conf = path.join(dir, 'freight.conf');
    confText = [
      'host-name engine.test',
      `spool-dir ${dir}/spool`,
      `run-dir ${dir}/run`,
      `acct-db ${dir}/acct.db`,
      `smtp-listener 127.0.0.1:${port}`,
      `dns-server ${dns.address}`,
      `remote-smtp-port ${sink.port}`,
      '<source 127.0.0.1/32>',
      '  always-allow-relaying yes',
      '</source>',
      '',
    ].join('\n');
    fs.writeFileSync(conf, confText);
    fs.mkdirSync(path.join(dir, 'spool', 'dsn'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'spool', 'dsn', 'left-over.eml'), 'not an outbox file\r\n');
    engine = startEngine(conf);
    await engine.waitFor(/engine started/);
  });

  after(async () => {
    await engine.kill('SIGKILL');
    await sink.close();
    await dns.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const cli = async (...args: string[]) => {
    const r = await runEngineCli([...args, '--config', conf]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  it('pause holds mail, show reports the queue, resume delivers it', { timeout: 60_000 }, async () => {
    assert.equal(
      fs.readFileSync(path.join(dir, 'run', 'engine.pid'), 'utf8').trim(),
      String(engine.child.pid),
    );
    assert.match(await cli('pause', 'queue', 'ctl.test'), /^paused: /);
    const c = await SmtpClient.open('127.0.0.1', port);
    await greet(c, 'lmtp');
    for (let i = 0; i < 3; i++) {
      assert.equal(
        (await sendMessage(c, taggedMessage(i, 's@app.test', [`u${i}@ctl.test`]), 'lmtp')).outcome,
        'accepted',
      );
    }
    c.close();
    const queues = JSON.parse(await cli('show', 'queues', '--json')) as QueueInfo[];
    const q = queues.find((x) => x.domain === 'ctl.test');
    assert.ok(q, JSON.stringify(queues));
    assert.equal(q.paused, true);
    assert.equal(q.depth, 3);
    assert.match(await cli('show', 'queues'), /ctl\.test\s+\S+\s+3\b/);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(sink.arrivals.length, 0, 'nothing delivered while paused');

    await cli('resume', 'queue', 'ctl.test');
    await sink.waitFor((s) => s.arrivals.length >= 3, 20_000, '3 arrivals after resume');
    const status = JSON.parse(await cli('show', 'status', '--json')) as EngineStatusReport;
    assert.equal(status.pid, engine.child.pid);
    assert.equal(status.intake.acceptedMessages, 3);
    assert.equal(status.intake.refusing, null);
    assert.match(await cli('show', 'status'), /accepted messages\s+3/);
    assert.deepEqual([status.dsn.outbox, status.dsn.corrupt, status.dsn.sent], [0, 1, 0]);
    assert.ok(fs.existsSync(path.join(dir, 'spool', 'dsn', 'corrupt', 'left-over.eml')));
    assert.match(await cli('show', 'status'), /DSNs failed\/corrupt\/no original\s+0\/1\/0/);
    const sched = JSON.parse(await cli('schedule', 'ctl.test', '--json')) as {
      domain: string;
      rescheduled: number;
    };
    assert.equal(sched.domain, 'ctl.test');
  });

  it('keeps running on SIGHUP with a broken config', async () => {
    fs.writeFileSync(conf, `${confText}\nno-such-directive yes\n<domain\n`);
    const mark = engine.output().length;
    engine.child.kill('SIGHUP');
    await engine.waitFor(/config reload refused/, 10_000, mark);
    fs.writeFileSync(conf, confText);
    await cli('show', 'status', '--json');
  });

  it('fails clearly when the engine is not running', async () => {
    await engine.kill('SIGTERM');
    assert.equal(fs.existsSync(path.join(dir, 'run', 'engine.pid')), false, 'pid file removed on SIGTERM');
    const r = await runEngineCli(['show', 'status', '--config', conf]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /engine is not running/);
  });
});
