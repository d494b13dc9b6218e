/**
 * The Postfix path is paced per domain from freight.conf: a `route-via postfix` domain with max-smtp-out 2
 * gets its own rendered transport, and a real Postfix never opens more than 2 connections to it at once,
 * while another domain at the same moment is not held to that limit.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { addr, freePort, startSink, testSubnet } from '../harness/index.js';
import { startTestPostfix, type TestPostfix } from '../harness/postfix.js';
import type { Sink } from '../harness/sink.js';
import { submit } from '../harness/smtp-client.js';

const MESSAGES = 12;
let postfix: TestPostfix;
let limited: Sink;
let free: Sink;

before(async () => {
  const net = testSubnet();
  // A slow receiver keeps each delivery open ~1.5 s, so deliveries overlap as far as Postfix allows.
  const script = { dataDelayMs: 1500 };
  limited = await startSink({ host: addr(net, 5), port: await freePort(addr(net, 5)), script });
  free = await startSink({ host: addr(net, 6), port: await freePort(addr(net, 6)), script });
  postfix = await startTestPostfix({
    freightConf: [
      '<domain limited.test>',
      '  route-via postfix',
      '  max-smtp-out 2',
      `  route [${limited.host}]:${limited.port}`,
      '</domain>',
      '<domain free.test>',
      '  route-via postfix',
      '  max-smtp-out 20',
      `  route [${free.host}]:${free.port}`,
      '</domain>',
    ].join('\n'),
  });
});

after(async () => {
  await postfix?.stop();
  await limited?.close();
  await free?.close();
});

test('the rendered per-domain transports carry the limits', () => {
  const main = readFileSync(join(postfix.layout.configDir, 'main.cf'), 'utf8');
  const master = readFileSync(join(postfix.layout.configDir, 'master.cf'), 'utf8');
  const table = readFileSync(join(postfix.layout.configDir, 'transport'), 'utf8');
  assert.match(main, /^pace_limited_test_destination_concurrency_limit = 2$/m);
  assert.match(main, /^pace_free_test_destination_concurrency_limit = 20$/m);
  assert.match(master, /^pace_limited_test unix .* smtp$/m);
  assert.ok(table.includes(`limited.test pace_limited_test:[${limited.host}]:${limited.port}\n`), table);
});

test('at most max-smtp-out concurrent connections to the limited domain; the other domain is not limited', async (t) => {
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    for (const domain of ['limited.test', 'free.test']) {
      sends.push(
        submit({ host: postfix.host, port: postfix.port, from: 'apps@apps.test', to: `u${i}@${domain}` }),
      );
    }
  }
  await Promise.all(sends);
  await limited.waitForArrivals(MESSAGES, 60_000);
  await free.waitForArrivals(MESSAGES, 60_000);
  const sent = await postfix.waitForLog(
    /postfix\/pace_limited_test\/smtp\[\d+\]: .*to=<u\d+@limited\.test>.*status=sent/,
    {
      count: MESSAGES,
    },
  );
  assert.equal(sent.length, MESSAGES);
  t.diagnostic(
    `limited.test: ${limited.maxConcurrentTransactions()} transactions, ${limited.maxConcurrentConnections()} TCP connections at most at once`,
  );
  // Postfix limits delivery agents, which hold a transaction each; a closing connection's QUIT tail
  // (Postfix does not wait for the reply) can overlap the next agent's connection at the sink.
  assert.equal(limited.maxConcurrentTransactions(), 2, 'limited.test is held to max-smtp-out 2');
  assert.ok(
    free.maxConcurrentTransactions() > 2,
    `free.test should see more than 2 concurrent transactions, saw ${free.maxConcurrentTransactions()}`,
  );
});
