/** A real private Postfix relays mail by transport map to a sink MX, and logs status=sent for it. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { addr, freePort, startSink, testSubnet } from '../harness/index.js';
import { startTestPostfix, type TestPostfix } from '../harness/postfix.js';
import type { Sink } from '../harness/sink.js';
import { submit } from '../harness/smtp-client.js';

let postfix: TestPostfix;
let sink: Sink;

before(async () => {
  const net = testSubnet();
  const sinkHost = addr(net, 5);
  const port = await freePort(sinkHost);
  sink = await startSink({ host: sinkHost, port });
  postfix = await startTestPostfix({ transports: [`example.com smtp:[${sinkHost}]:${port}`] });
});

after(async () => {
  await postfix?.stop();
  await sink?.close();
});

test('mail submitted to Postfix arrives at the sink named by the transport map', async () => {
  const result = await submit({
    host: postfix.host,
    port: postfix.port,
    from: 'sender@apps.test',
    to: ['alice@example.com', 'bob@example.com'],
    subject: 'routed',
    headers: { 'X-Test-Marker': 'transport-map' },
  });
  assert.deepEqual(result.accepted.sort(), ['alice@example.com', 'bob@example.com']);
  const [arrival] = await sink.waitForArrivals(1, 30_000);
  assert.ok(arrival);
  assert.equal(arrival.mailFrom, 'sender@apps.test');
  assert.deepEqual([...arrival.rcptTo].sort(), ['alice@example.com', 'bob@example.com']);
  assert.equal(arrival.headers['x-test-marker']?.[0], 'transport-map');
  const sent = await postfix.waitForLog(
    /postfix\/smtp\[\d+\]: \w+: to=<(alice|bob)@example\.com>.*status=sent/,
    {
      count: 2,
    },
  );
  assert.equal(sent.length, 2);
  assert.match(
    sent[0]!,
    new RegExp(
      `relay=${sink.host.replace(/\./g, '\\.')}\\[${sink.host.replace(/\./g, '\\.')}\\]:${sink.port}`,
    ),
  );
});

test('mail for a domain without a transport entry is not sent to the sink', async () => {
  const before = sink.arrivals.length;
  await submit({
    host: postfix.host,
    port: postfix.port,
    from: 'sender@apps.test',
    to: 'carol@elsewhere.test',
  });
  await postfix.waitForLog(/to=<carol@elsewhere\.test>.*status=(deferred|bounced)/, { timeoutMs: 30_000 });
  assert.equal(sink.arrivals.length, before);
});
