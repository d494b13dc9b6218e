/**
 * The migration ramp end to end with the real engine: Postfix asks `freight ramp` per recipient; the
 * engine share is handed over LMTP to a real `freight engine`, which resolves the MX in the test DNS and
 * delivers from its virtual MTA; the rest goes by Postfix's own smtp. 10 % of 5,000, then 100 %, then
 * 0 % while both paths hold mail in retry — every recipient arrives exactly once, by exactly one path.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type FreightDaemon, runFreight, startFreight } from '../harness/freight.js';
import { type Sink, until } from '../harness/index.js';
import type { TestPostfix } from '../harness/postfix.js';
import { type PostfixEngineWorld, startPostfixEngineWorld } from '../harness/postfix-engine-world.js';
import { arrivalCounts, recipients, submitBulk } from './ramp-harness.js';

let world: PostfixEngineWorld;
let ip: (n: number) => string;
let postfix: TestPostfix;
let engineSink: Sink;
let postfixSink: Sink;
let ramp: FreightDaemon;
let engine: FreightDaemon;
let tailer: FreightDaemon;

const startEngine = async () => {
  engine = await world.startEngineProcess(60_000);
};

const setShare = async (percent: number) => {
  const r = await runFreight(['ramp', 'set', 'example.com', String(percent), '--config', postfix.configPath]);
  assert.equal(r.code, 0, r.stderr);
  await ramp.waitFor(new RegExp(`share example\\.com ${percent}%`), 10_000);
};

function assertOnePathEach(): void {
  const e = arrivalCounts(engineSink);
  const p = arrivalCounts(postfixSink);
  for (const [rcpt, n] of e) assert.equal(n, 1, `${rcpt} arrived ${n}× on the engine path`);
  for (const [rcpt, n] of p) assert.equal(n, 1, `${rcpt} arrived ${n}× on the Postfix path`);
  assert.deepEqual(
    [...e.keys()].filter((r) => p.has(r)),
    [],
    'recipients delivered by both paths',
  );
}

before(async () => {
  world = await startPostfixEngineWorld({
    sinks: [
      { at: 6, name: 'mx-via-engine' },
      { at: 5, name: 'mx-via-postfix' },
    ],
    mx: { 'example.com': 6 },
    globals: { 'ramp-enabled': 'yes' },
    // Postfix's own path goes to its own sink so that arrivals tell the two paths apart.
    transports: (ip, port) => [`example.com smtp:[${ip(5)}]:${port}`],
    freightConf: (ip) => `
<virtual-mta mta1>
  smtp-source-host ${ip(10)} mta1.freight.test
</virtual-mta>
<domain *>
  virtual-mta mta1
  retry-after 1s
  max-smtp-out 10
</domain>
`,
    engine: 'none',
  });
  ({ ip, postfix } = world);
  [engineSink, postfixSink] = world.sinks as [Sink, Sink];
  await startEngine();
  ramp = startFreight(['ramp', '--config', postfix.configPath]);
  tailer = startFreight(['tailer', '--config', postfix.configPath]);
  await ramp.waitFor(/listening on/, 60_000);
});

after(async () => {
  await ramp?.stop();
  await tailer?.stop();
  await engine?.stop();
  await world?.stop();
});

test('10 % of 5,000 recipients go through the real engine, the rest through Postfix, all once', async (t) => {
  await setShare(10);
  const rcpts = recipients('a', 5000);
  await submitBulk(postfix.host, postfix.port, rcpts, { perMessage: 100, parallel: 5 });
  await until(
    () => arrivalCounts(engineSink).size + arrivalCounts(postfixSink).size >= 5000,
    240_000,
    '5,000 arrivals',
    200,
  );
  const viaEngine = arrivalCounts(engineSink);
  const share = (100 * viaEngine.size) / rcpts.length;
  t.diagnostic(`engine path ${viaEngine.size} (${share}%), Postfix path ${arrivalCounts(postfixSink).size}`);
  assert.ok(share >= 8 && share <= 12, `engine share ${share}%`);
  assert.ok(
    engineSink.arrivals.every((a) => a.sourceIp === ip(10) && a.ehlo === 'mta1.freight.test'),
    'the engine delivered from mta1',
  );
  assertOnePathEach();
});

test('at 100 %, every new recipient goes through the engine', async () => {
  const before = postfixSink.arrivals.length;
  await setShare(100);
  const rcpts = recipients('b', 500);
  await submitBulk(postfix.host, postfix.port, rcpts, { perMessage: 50, parallel: 5 });
  await until(
    () => rcpts.every((r) => arrivalCounts(engineSink).has(r)),
    120_000,
    '500 engine arrivals',
    200,
  );
  assert.equal(postfixSink.arrivals.length, before, 'nothing new on the Postfix path');
  assertOnePathEach();
});

test('rollback to 0 % with retries on both paths: nothing lost, nothing twice, one path each', async () => {
  // Mail the engine already holds and retries: its MX defers the "c" recipients for now.
  engineSink.setScript({ rcptTo: [{ match: /^c\d+@/i, code: 450, message: '4.2.1 Try again later' }] });
  const inEngine = recipients('c', 200);
  await submitBulk(postfix.host, postfix.port, inEngine, { perMessage: 50, parallel: 4 });
  await until(
    () => inEngine.every((r) => engineSink.refusals.some((x) => x.address?.toLowerCase() === r)),
    120_000,
    'engine retrying every c recipient',
    200,
  );
  // Mail Postfix holds for the engine path: the engine is down, so Postfix defers the hand-off.
  await engine.stop();
  const inPostfix = recipients('d', 200);
  await submitBulk(postfix.host, postfix.port, inPostfix, { perMessage: 50, parallel: 4 });
  await postfix.waitForLog(/to=<d\d+@example\.com>.*relay=none.*status=deferred/, { timeoutMs: 60_000 });

  await setShare(0);
  engineSink.setScript({});
  await startEngine();
  await until(
    () =>
      inEngine.every((r) => arrivalCounts(engineSink).has(r)) &&
      inPostfix.every((r) => arrivalCounts(postfixSink).has(r)),
    180_000,
    'all rollback recipients delivered',
    200,
  );
  const viaEngine = arrivalCounts(engineSink);
  const viaPostfix = arrivalCounts(postfixSink);
  for (const r of inEngine) assert.ok(!viaPostfix.has(r), `${r} was handed to the engine and stays there`);
  for (const r of inPostfix) assert.ok(!viaEngine.has(r), `${r} was still in Postfix and takes its path`);
  assertOnePathEach();
  assert.equal(viaEngine.size + viaPostfix.size, 5000 + 500 + 200 + 200);
});

interface PathRow {
  group: string;
  delivered: number;
  deferred: number;
  bounced: number;
  deliveryRate: number | null;
  topDeferrals: Array<{ diag: string; count: number }>;
}

test('acct summary --by path shows the two paths side by side, hand-offs apart', async () => {
  const viaEngine = arrivalCounts(engineSink).size;
  const viaPostfix = arrivalCounts(postfixSink).size;
  let rows: PathRow[] = [];
  const byPath = (g: string) => rows.find((r) => r.group === g);
  // The tailer accounts Postfix's half from the maillog; poll the report until it has caught up.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await runFreight([
      'acct',
      'summary',
      '--by',
      'path',
      '--domain',
      'example.com',
      '--since',
      '1h',
      '--json',
      '--config',
      postfix.configPath,
    ]);
    assert.equal(r.code, 0, r.stderr);
    rows = JSON.parse(r.stdout);
    const caughtUp =
      (byPath('postfix')?.delivered ?? 0) >= viaPostfix && (byPath('handoff')?.delivered ?? 0) >= viaEngine;
    if (caughtUp || Date.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 1000));
  }
  assert.equal(
    byPath('postfix')?.delivered,
    viaPostfix,
    'Postfix path: one d row per recipient it delivered',
  );
  assert.equal(byPath('engine')?.delivered, viaEngine, 'engine path: one d row per recipient it delivered');
  assert.ok((byPath('engine')?.deferred ?? 0) >= 200, 'the engine path shows its deferrals');
  assert.ok(
    byPath('engine')?.topDeferrals.some((d) => /Try again later/.test(d.diag)),
    'with the deferral diagnostic',
  );
  assert.equal(byPath('handoff')?.delivered, viaEngine, 'every engine recipient was handed off once');
  assert.ok((byPath('handoff')?.deferred ?? 0) >= 200, 'hand-offs deferred while the engine was down');
});
