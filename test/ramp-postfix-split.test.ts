/**
 * The migration ramp against a real Postfix: `freight ramp set example.com N` splits a domain's recipients
 * between the engine path and Postfix's own smtp, every recipient arrives exactly once, and lowering the
 * share while recipients are being retried moves them to Postfix without any recipient taking both paths.
 *
 * The engine path here is a second sink (ramp-engine-transport smtp:[…]) standing in for `freight engine`:
 * what is under test is Postfix's routing by the ramp, measured where mail arrives.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type FreightDaemon, runFreight, startFreight } from '../harness/freight.js';
import { addr, freePort, type Sink, startSink, testSubnet, until } from '../harness/index.js';
import { startTestPostfix, type TestPostfix } from '../harness/postfix.js';
import { arrivalCounts, recipients, submitBulk } from './ramp-harness.js';

let postfix: TestPostfix;
let engineSink: Sink;
let postfixSink: Sink;
let ramp: FreightDaemon;

const rampCli = async (...args: string[]) => {
  const r = await runFreight(['ramp', ...args, '--config', postfix.configPath]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};

interface ShownRow {
  domain: string;
  share: number;
  engine: number;
  postfix: number;
}

const rampShow = async (): Promise<ShownRow[]> => JSON.parse(await rampCli('show', '--json'));

/** Every recipient at most once per sink and never at both. */
function assertNoDuplicates(): void {
  const e = arrivalCounts(engineSink);
  const p = arrivalCounts(postfixSink);
  for (const [rcpt, n] of e) assert.equal(n, 1, `${rcpt} arrived ${n}× on the engine path`);
  for (const [rcpt, n] of p) assert.equal(n, 1, `${rcpt} arrived ${n}× on the Postfix path`);
  const both = [...e.keys()].filter((r) => p.has(r));
  assert.deepEqual(both, [], 'recipients delivered by both paths');
}

before(async () => {
  const net = testSubnet();
  postfixSink = await startSink({
    host: addr(net, 5),
    port: await freePort(addr(net, 5)),
    name: 'postfix-path',
  });
  engineSink = await startSink({
    host: addr(net, 6),
    port: await freePort(addr(net, 6)),
    name: 'engine-path',
  });
  postfix = await startTestPostfix({
    globals: {
      'ramp-enabled': 'yes',
      'ramp-engine-transport': `smtp:[${engineSink.host}]:${engineSink.port}`,
    },
    transports: [`example.com smtp:[${postfixSink.host}]:${postfixSink.port}`],
  });
  ramp = startFreight(['ramp', '--config', postfix.configPath]);
  await ramp.waitFor(/listening on/);
});

after(async () => {
  await ramp?.stop();
  await postfix?.stop();
  await engineSink?.close();
  await postfixSink?.close();
});

test('at 10 %, 10 % ± 2 % of 5,000 recipients take the engine path and all arrive once', async (t) => {
  await rampCli('set', 'example.com', '10');
  await ramp.waitFor(/share example\.com 10%/, 5000);
  const rcpts = recipients('a', 5000);
  await submitBulk(postfix.host, postfix.port, rcpts, { perMessage: 100, parallel: 5 });
  const arrived = () => arrivalCounts(engineSink).size + arrivalCounts(postfixSink).size;
  await until(() => arrived() >= 5000, 120_000, '5,000 arrivals', 200);

  const engine = arrivalCounts(engineSink);
  const viaPostfix = arrivalCounts(postfixSink);
  assert.deepEqual([...engine.keys(), ...viaPostfix.keys()].sort(), [...rcpts].sort());
  assertNoDuplicates();
  const share = (100 * engine.size) / rcpts.length;
  assert.ok(share >= 8 && share <= 12, `engine share ${share}%`);
  t.diagnostic(`engine path ${engine.size}, Postfix path ${viaPostfix.size} (${share}%)`);

  // The measured split counts each recipient once although Postfix asked about it at smtpd and at delivery.
  let row: ShownRow | undefined;
  for (let i = 0; i < 40; i++) {
    row = (await rampShow()).find((r) => r.domain === 'example.com');
    if (row && row.engine + row.postfix >= 5000) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(row, 'ramp show lists example.com');
  assert.equal(row.share, 10);
  assert.equal(row.engine, engine.size);
  assert.equal(row.postfix, viaPostfix.size);
});

test('at 100 %, every new recipient takes the engine path', async () => {
  const beforePostfix = postfixSink.arrivals.length;
  await rampCli('set', 'example.com', '100');
  await ramp.waitFor(/share example\.com 100%/, 5000);
  const rcpts = recipients('b', 1000);
  await submitBulk(postfix.host, postfix.port, rcpts, { perMessage: 100, parallel: 5 });
  await until(
    () => rcpts.every((r) => arrivalCounts(engineSink).has(r)),
    60_000,
    '1,000 engine arrivals',
    200,
  );
  assert.equal(postfixSink.arrivals.length, beforePostfix, 'nothing new on the Postfix path');
  assertNoDuplicates();
});

test('lowering to 0 % while the engine path defers moves the retried recipients to Postfix, once each', async () => {
  // The engine path defers every "-d" recipient; Postfix keeps them queued and retries them there.
  engineSink.setScript({ rcptTo: [{ match: /^c\d+-d@/i, code: 450, message: '4.2.1 Try again later' }] });
  const accepted = recipients('c', 250, '-a');
  const deferred = recipients('c', 250, '-d');
  const rcpts = accepted.flatMap((a, i) => [a, deferred[i]!]);
  await submitBulk(postfix.host, postfix.port, rcpts, { perMessage: 50, parallel: 5 });
  await until(
    () => accepted.every((r) => arrivalCounts(engineSink).has(r)),
    60_000,
    'accepted recipients at the engine path',
    200,
  );
  const refusedTimes = () => {
    const n = new Map<string, number>();
    for (const r of engineSink.refusals)
      if (r.address) n.set(r.address.toLowerCase(), (n.get(r.address.toLowerCase()) ?? 0) + 1);
    return n;
  };
  // Sticky under retries: each deferred recipient came back to the engine path at least twice.
  await until(
    () => {
      const n = refusedTimes();
      return deferred.every((r) => (n.get(r) ?? 0) >= 2);
    },
    60_000,
    'two engine-path attempts per deferred recipient',
    200,
  );
  assert.ok((await postfix.queueIds()).length > 0, 'deferred mail is in the Postfix queue');

  await rampCli('set', 'example.com', '0');
  await ramp.waitFor(/share example\.com 0%/, 5000);
  // The engine path keeps deferring: an attempt Postfix had already routed there before the switch is
  // deferred once more and re-routed on its retry, and a recipient the ramp still sent there would never
  // reach the Postfix path, so the wait below would fail.
  const switchedAt = Date.now();
  await until(
    () => deferred.every((r) => arrivalCounts(postfixSink).has(r)),
    60_000,
    'deferred recipients at the Postfix path',
    200,
  );
  for (let i = 0; i < 50 && (await postfix.queueIds()).length > 0; i++)
    await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(await postfix.queueIds(), [], 'Postfix queue drained');

  const lateAttempts = engineSink.refusals.filter((r) => r.time > switchedAt + 2000).length;
  assert.equal(lateAttempts, 0, 'no engine-path attempts from 2 s after the switch');
  const engine = arrivalCounts(engineSink);
  const viaPostfix = arrivalCounts(postfixSink);
  for (const r of accepted) assert.ok(engine.has(r) && !viaPostfix.has(r), `${r} only on the engine path`);
  for (const r of deferred) assert.ok(viaPostfix.has(r) && !engine.has(r), `${r} only on the Postfix path`);
  assertNoDuplicates();
  // Everything from every phase arrived exactly once.
  assert.equal(engine.size + viaPostfix.size, 5000 + 1000 + 500);
});
