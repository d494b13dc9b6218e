/**
 * The engine SIGKILLed three times under load: every message the client got 250 for reaches the sink
 * at least once; duplicates are bounded by what can be in flight at a kill (open outbound transactions,
 * plus messages the client itself re-sent because its connection died after DATA).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type EngineProc, startEngine } from '../bench/lib/engine-proc.js';
import { runLoad, taggedMessage } from '../bench/lib/smtp-load.js';
import { startDnsServer, type TestDns } from './world/dns.js';
import { addr, freePort, testSubnet } from './world/ports.js';
import { type Sink, startSink } from './world/sink.js';

const MAX_SMTP_OUT = 4;
const KILLS = 3;
const MESSAGES = 600;

describe('engine crash safety', () => {
  let dir: string;
  let dns: TestDns;
  let sink: Sink;
  let port: number;
  let confPath: string;
  let engine: EngineProc | null = null;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-crash-'));
    const net = testSubnet();
    dns = await startDnsServer({ host: addr(net, 1) });
    sink = await startSink({ host: addr(net, 10), port: 0 });
    dns.mx('crash.test', [{ exchange: 'mx.crash.test', priority: 10 }]);
    dns.a('mx.crash.test', [addr(net, 10)]);
    port = await freePort();
    confPath = path.join(dir, 'freight.conf');
    fs.writeFileSync(
      confPath,
      [
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
        '<domain *>',
        `  max-smtp-out ${MAX_SMTP_OUT}`,
        '  retry-after 1s',
        '</domain>',
        '',
      ].join('\n'),
    );
  });

  after(async () => {
    await engine?.kill('SIGKILL');
    await sink.close();
    await dns.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('loses no acknowledged message across three SIGKILLs', { timeout: 180_000 }, async () => {
    engine = startEngine(confPath);
    await engine.waitFor(/engine started/);
    let kills = 0;
    let stopped = false;
    const chaos = (async () => {
      while (kills < KILLS) {
        await new Promise((r) => setTimeout(r, 400 + Math.random() * 900));
        await engine!.kill('SIGKILL');
        kills++;
        await new Promise((r) => setTimeout(r, 200));
        engine = startEngine(confPath);
        await engine.waitFor(/engine started/);
      }
      stopped = true;
    })();
    const load = await runLoad({
      host: '127.0.0.1',
      port,
      protocol: 'lmtp',
      connections: 8,
      messages: MESSAGES,
      message: (i) => taggedMessage(i, 'sender@app.test', [`user${i % 50}@crash.test`], 1500),
      retries: 1000,
      reconnectDelayMs: 100,
    });
    await chaos;
    assert.ok(stopped);
    assert.equal(
      load.accepted,
      MESSAGES,
      `every message acknowledged eventually: ${JSON.stringify(load.replies.filter((_r, i) => load.outcomes[i] !== 'accepted').slice(0, 3))}`,
    );

    const seen = () => new Set(sink.arrivals.map((a) => a.headers['x-load-id']?.[0]));
    await sink.waitFor(() => seen().size >= MESSAGES, 120_000, 'every acknowledged message at the sink');
    const counts = new Map<string, number>();
    for (const a of sink.arrivals) {
      const id = a.headers['x-load-id']?.[0] ?? '?';
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (let i = 0; i < MESSAGES; i++) assert.ok(counts.has(String(i)), `message ${i} delivered`);
    const resent = load.sends.filter((n) => n > 1).length;
    const duplicates = [...counts.entries()]
      .filter(([id]) => load.sends[Number(id)] === 1)
      .reduce((s, [, n]) => s + n - 1, 0);
    assert.ok(
      duplicates <= KILLS * MAX_SMTP_OUT,
      `duplicates ${duplicates} > ${KILLS} kills × ${MAX_SMTP_OUT} outbound transactions in flight`,
    );
    process.stderr.write(
      `# crash test: ${MESSAGES} acknowledged, ${duplicates} engine duplicates, ${resent} client re-sends\n`,
    );
    await engine.kill('SIGTERM');
  });
});
