/**
 * The API in front of a real engine: pause/resume/schedule over HTTP steer the engine's queues, /queues
 * reports them, and /metrics (checked with an independent Prometheus text-format parser) carries queue
 * depth, mode, delivery totals, daemon liveness and the tailer's lag against its committed position.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import { startDnsServer, type TestDns } from '../harness/dns.js';
import { type EngineProc, startEngine } from '../harness/engine-proc.js';
import { type FreightDaemon, startFreight } from '../harness/freight.js';
import { httpCall } from '../harness/http.js';
import { addr, freePort, testSubnet } from '../harness/ports.js';
import { type Sink, startSink } from '../harness/sink.js';
import { greet, SmtpClient, sendMessage, taggedMessage } from '../harness/smtp-load.js';
import { AcctStore } from '../sidecar/acct/store.js';
import type { QueueInfo } from '../sidecar/engine/control/protocol.js';
import { TailerStore } from '../sidecar/tailer/offset-store.js';

const KEY = 'metrics-key-77';

/** Parse and check the exposition strictly: every family typed, every sample a finite number. */
function parseMetrics(text: string): Map<string, ParsedFamily> {
  const families = parsePrometheusTextFormat(text);
  const out = new Map<string, ParsedFamily>();
  for (const f of families) {
    assert.match(f.name, /^freight_[a-z_]+$/);
    assert.ok(f.type === 'GAUGE' || f.type === 'COUNTER', `${f.name} has type ${f.type}`);
    assert.ok(f.help.length > 0, `${f.name} has no HELP`);
    for (const m of f.metrics) assert.ok(Number.isFinite(Number(m.value)), `${f.name} ${JSON.stringify(m)}`);
    assert.equal(out.has(f.name), false, `${f.name} appears twice`);
    out.set(f.name, f);
  }
  return out;
}

function sample(
  fams: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | null {
  const f = fams.get(name);
  const m = f?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return m ? Number(m.value) : null;
}

describe('freight api in front of a running engine', { timeout: 240_000 }, () => {
  let dir: string;
  let dns: TestDns;
  let sink: Sink;
  let engine: EngineProc;
  let api: FreightDaemon;
  let port: number;
  let base: { host: string; port: number };
  let maillog: string;
  const call = (method: string, p: string, opts: { key?: string; body?: unknown } = {}) =>
    httpCall(base, method, p, opts);
  const metrics = async () => {
    const r = await call('GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    return parseMetrics(r.text);
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-apieng-'));
    const net = testSubnet();
    dns = await startDnsServer({ host: addr(net, 1) });
    sink = await startSink({ host: addr(net, 20), port: 0 });
    dns.mx('metrics.test', [{ exchange: 'mx.metrics.test', priority: 10 }]);
    dns.a('mx.metrics.test', [addr(net, 20)]);
    port = await freePort();
    base = { host: '127.0.0.1', port: await freePort() };
    maillog = path.join(dir, 'maillog');
    const conf = path.join(dir, 'freight.conf');
    fs.writeFileSync(
      conf,
      [
        'host-name engine.test',
        `spool-dir ${dir}/spool`,
        `run-dir ${dir}/run`,
        `acct-db ${dir}/acct.db`,
        `maillog ${maillog}`,
        `smtp-listener 127.0.0.1:${port}`,
        `http-mgmt-listener 127.0.0.1:${base.port}`,
        `http-api-key ${KEY}`,
        `dns-server ${dns.address}`,
        `remote-smtp-port ${sink.port}`,
        '<source 127.0.0.1/32>',
        '  always-allow-relaying yes',
        '</source>',
        '',
      ].join('\n'),
    );
    engine = startEngine(conf);
    await engine.waitFor(/engine started/, 60_000);
    api = startFreight(['api', '--config', conf]);
    await api.waitFor(/listening on http:/, 60_000);
  });

  after(async () => {
    await api.stop();
    await engine.kill('SIGKILL');
    await sink.close();
    await dns.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pauses a queue over HTTP, reports it in /queues and /metrics, resumes it', {
    timeout: 90_000,
  }, async () => {
    const pause = await call('POST', '/queues/metrics.test/pause', { key: KEY, body: {} });
    assert.equal(pause.status, 200, pause.text);
    const c = await SmtpClient.open('127.0.0.1', port);
    await greet(c, 'lmtp');
    for (let i = 0; i < 3; i++) {
      const r = await sendMessage(c, taggedMessage(i, 's@app.test', [`u${i}@metrics.test`]), 'lmtp');
      assert.equal(r.outcome, 'accepted');
    }
    c.close();

    const queues = (await call('GET', '/queues')).json as QueueInfo[];
    const q = queues.find((x) => x.domain === 'metrics.test');
    assert.ok(q, JSON.stringify(queues));
    assert.equal(q.paused, true);
    assert.equal(q.depth, 3);
    const labels = { domain: 'metrics.test', vmta: q.vmta };

    let fams = await metrics();
    assert.equal(sample(fams, 'freight_up', { daemon: 'engine' }), 1);
    assert.equal(sample(fams, 'freight_up', { daemon: 'policy' }), 0);
    assert.equal(sample(fams, 'freight_queue_depth', labels), 3);
    assert.equal(sample(fams, 'freight_queue_paused', labels), 1);
    assert.equal(sample(fams, 'freight_queue_mode', { ...labels, mode: 'normal' }), 1);
    assert.equal(sample(fams, 'freight_queue_mode', { ...labels, mode: 'backoff' }), 0);
    assert.equal(sample(fams, 'freight_queue_delivered_total', labels), 0);
    assert.equal(fams.get('freight_queue_delivered_total')?.type, 'COUNTER');
    assert.equal(sample(fams, 'freight_engine_queued_recipients'), 3);
    // The three held messages' bodies are in the spool's data segment.
    assert.ok((sample(fams, 'freight_engine_spool_data_bytes') ?? 0) > 0);
    assert.equal(sink.arrivals.length, 0, 'nothing delivered while paused');

    const resume = await call('POST', '/queues/metrics.test/resume', { key: KEY, body: {} });
    assert.equal(resume.status, 200, resume.text);
    assert.deepEqual(resume.json.queues, [`metrics.test/${q.vmta}`]);
    await sink.waitFor((s) => s.arrivals.length >= 3, 60_000, '3 arrivals after resume');

    const deadline = Date.now() + 10_000;
    do {
      fams = await metrics();
      if (sample(fams, 'freight_queue_delivered_total', labels) === 3) break;
      await new Promise((r) => setTimeout(r, 200));
    } while (Date.now() < deadline);
    assert.equal(sample(fams, 'freight_queue_delivered_total', labels), 3);
    assert.equal(sample(fams, 'freight_queue_depth', labels), 0);
    assert.equal(sample(fams, 'freight_queue_paused', labels), 0);

    const vmtaPath = `/queues/metrics.test/${encodeURIComponent(q.vmta)}`;
    assert.equal((await call('POST', `${vmtaPath}/pause`, { key: KEY })).status, 200);
    assert.equal(sample(await metrics(), 'freight_queue_paused', labels), 1);
    const r2 = await call('POST', '/queues/metrics.test/resume', { key: KEY, body: { vmta: q.vmta } });
    assert.deepEqual(r2.json.queues, [`metrics.test/${q.vmta}`]);
    assert.equal(sample(await metrics(), 'freight_queue_paused', labels), 0);

    const sched = await call('POST', '/domains/metrics.test/schedule', { key: KEY });
    assert.equal(sched.status, 200);
    assert.equal(sched.json.domain, 'metrics.test');
    const status = await call('GET', '/status');
    assert.equal(status.json.intake.acceptedMessages, 3);
  });

  it('reports tailer lag against the committed maillog offset', async () => {
    fs.writeFileSync(maillog, 'x'.repeat(1000));
    let fams = await metrics();
    assert.equal(sample(fams, 'freight_tailer_lag_bytes'), 1000, 'nothing committed yet: the whole file');
    const store = AcctStore.open(path.join(dir, 'acct.db'));
    try {
      const ino = fs.statSync(maillog).ino;
      new TailerStore(store, 'maillog', null).commit({
        rows: [],
        suppress: [],
        upserts: [],
        deletes: [],
        position: { fpLen: 0, fpHash: '', offset: 600, ino, path: maillog },
      });
    } finally {
      store.close();
    }
    fams = await metrics();
    assert.equal(sample(fams, 'freight_tailer_lag_bytes'), 400);
    const seconds = sample(fams, 'freight_tailer_lag_seconds');
    assert.ok(seconds !== null && seconds >= 0 && seconds < 60, String(seconds));
  });

  it('answers 503 ENGINE_UNAVAILABLE and drops engine series once the engine stops', async () => {
    await engine.kill('SIGTERM');
    const r = await call('GET', '/queues');
    assert.equal(r.status, 503);
    assert.equal(r.json.error.code, 'ENGINE_UNAVAILABLE');
    const fams = await metrics();
    assert.equal(sample(fams, 'freight_up', { daemon: 'engine' }), 0);
    assert.equal(fams.get('freight_queue_depth')?.metrics.length ?? 0, 0);
    assert.equal(sample(fams, 'freight_engine_queued_recipients'), null);
  });
});
