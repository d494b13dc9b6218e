/**
 * A ramp that is down or stalled never misroutes or loses mail: Postfix temp-fails intake (451) and holds
 * queued mail (deferred, "address resolver failure"), then delivers it on the ramped path once the ramp
 * answers again — with the share it had before, read back from the database after the restart.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type FreightDaemon, runFreight, startFreight } from '../harness/freight.js';
import { addr, freePort, type Sink, startSink, testSubnet, until } from '../harness/index.js';
import { startTestPostfix, type TestPostfix } from '../harness/postfix.js';
import { submit } from '../harness/smtp-client.js';
import { arrivalCounts, recipients, submitBulk } from './ramp-harness.js';

let postfix: TestPostfix;
let engineSink: Sink;
let postfixSink: Sink;
let ramp: FreightDaemon | undefined;

const startRamp = async () => {
  ramp = startFreight(['ramp', '--config', postfix.configPath]);
  await ramp.waitFor(/listening on/);
};

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
  const set = await runFreight(['ramp', 'set', 'example.com', '100', '--config', postfix.configPath]);
  assert.equal(set.code, 0, set.stderr);
  await startRamp();
});

after(async () => {
  if (ramp) {
    // A test that failed while the ramp was stopped must not leave it unable to receive SIGTERM.
    ramp.child.kill('SIGCONT');
    await ramp.stop();
  }
  await postfix?.stop();
  await engineSink?.close();
  await postfixSink?.close();
});

const logCount = (re: RegExp) =>
  postfix
    .readLog()
    .split('\n')
    .filter((l) => re.test(l)).length;

test('ramp killed: Postfix refuses new mail with 451, holds queued mail, and delivers it after a restart', async () => {
  // Queue mail for the engine path and keep it there: the engine path defers for now.
  engineSink.setScript({ rcptTo: [{ match: /./, code: 450, message: '4.2.1 Try again later' }] });
  const rcpts = recipients('k', 200);
  await submitBulk(postfix.host, postfix.port, rcpts, { perMessage: 50, parallel: 4 });
  await until(
    () => new Set(engineSink.refusals.map((r) => r.address)).size >= 200,
    60_000,
    'every recipient deferred once',
    200,
  );

  await ramp!.kill('SIGKILL');
  ramp = undefined;
  const failuresBefore = logCount(/status=deferred \(address resolver failure\)/);
  // Postfix keeps retrying and keeps deferring: no path is taken while the ramp cannot answer.
  await until(
    () => logCount(/status=deferred \(address resolver failure\)/) >= failuresBefore + 200,
    60_000,
    'retries deferred for the resolver failure',
    200,
  );
  await assert.rejects(
    submit({ host: postfix.host, port: postfix.port, from: 'sender@apps.test', to: 'late@example.com' }),
    /451 4\.3\.0/,
  );
  assert.equal(postfixSink.arrivals.length, 0, 'nothing was misrouted to the Postfix path');
  assert.equal((await postfix.queueIds()).length, 4, 'all four messages are held in the Postfix queue');

  engineSink.setScript({});
  await startRamp();
  await until(() => arrivalCounts(engineSink).size >= 200, 60_000, 'all recipients on the engine path', 200);
  const engine = arrivalCounts(engineSink);
  assert.deepEqual([...engine.keys()].sort(), rcpts);
  for (const [r, n] of engine) assert.equal(n, 1, `${r} arrived ${n}×`);
  assert.equal(postfixSink.arrivals.length, 0);
  assert.equal(logCount(/status=bounced/), 0, 'nothing bounced');
});

test('ramp stalled (SIGSTOP): lookups wait, nothing is misrouted, mail flows when it answers again', async () => {
  engineSink.setScript({ rcptTo: [{ match: /./, code: 450, message: '4.2.1 Try again later' }] });
  const rcpts = recipients('s', 50);
  await submitBulk(postfix.host, postfix.port, rcpts, { perMessage: 50, parallel: 1 });
  await until(
    () => rcpts.every((r) => engineSink.refusals.some((x) => x.address === r)),
    60_000,
    'every recipient deferred once',
    200,
  );
  const before = engineSink.arrivals.length;

  ramp!.child.kill('SIGSTOP');
  const stoppedAt = Date.now();
  // Several retry rounds (queue_run_delay 1s, backoff 1–2 s) while the ramp cannot answer.
  await new Promise((r) => setTimeout(r, 6000));
  // Postfix waits for the answer instead of guessing a path: no new attempt anywhere (an attempt already
  // routed before the stop may finish just after it).
  const attempts = engineSink.refusals.filter((r) => r.time > stoppedAt + 2000).length;
  assert.equal(attempts, 0, 'no engine-path attempts while the ramp is stalled');
  assert.equal(engineSink.arrivals.length, before);
  assert.equal(postfixSink.arrivals.length, 0, 'nothing was misrouted to the Postfix path');

  engineSink.setScript({});
  ramp!.child.kill('SIGCONT');
  await until(
    () => rcpts.every((r) => arrivalCounts(engineSink).has(r)),
    90_000,
    'stalled mail delivered',
    200,
  );
  for (const r of rcpts) assert.equal(arrivalCounts(engineSink).get(r), 1);
  assert.equal(postfixSink.arrivals.length, 0);
});
