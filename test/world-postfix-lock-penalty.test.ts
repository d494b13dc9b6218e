/**
 * The test world's answer to qmgr's 60 s lock penalty (harness/postfix-lock-penalty.ts). The test
 * makes the penalty happen on purpose: it holds a shared flock on a deferred queue file — what a
 * delivery agent slow to close the file does on a loaded machine — until qmgr finds the file locked
 * and parks it in `incoming` a minute ahead. Released, the message must be delivered in seconds, not
 * after the minute.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { addr, freePort, type Sink, startSink, testSubnet, until } from '../harness/index.js';
import { startTestPostfix, type TestPostfix } from '../harness/postfix.js';
import { submit } from '../harness/smtp-client.js';

let postfix: TestPostfix;
let sink: Sink;
let holder: ChildProcess | undefined;

before(async () => {
  const net = testSubnet();
  sink = await startSink({ host: addr(net, 5), port: await freePort(addr(net, 5)) });
  postfix = await startTestPostfix({ transports: [`example.com smtp:[${sink.host}]:${sink.port}`] });
});

after(async () => {
  holder?.kill('SIGKILL');
  await postfix?.stop();
  await sink?.close();
});

/** Path of queue file `id` in whichever queue it is now (deferred is hashed one level deep). */
function findQueueFile(queueDir: string, id: string): string | null {
  for (const queue of ['deferred', 'active', 'incoming']) {
    const base = join(queueDir, queue);
    const dirs = queue === 'deferred' ? readdirSync(base).map((d) => join(base, d)) : [base];
    for (const dir of dirs) {
      try {
        if (readdirSync(dir).includes(id)) return join(dir, id);
      } catch {}
    }
  }
  return null;
}

test('a queue file qmgr parked for a minute because it was locked is retried once the lock is gone', async () => {
  sink.setScript({ rcptTo: [{ match: /@example\.com$/, code: 450, message: '4.2.1 Try again later' }] });
  await submit({ host: postfix.host, port: postfix.port, from: 'app@apps.test', to: 'parked@example.com' });
  await postfix.waitForLog(/status=deferred/, { timeoutMs: 30_000 });
  const [id] = await postfix.queueIds();
  assert.ok(id, 'the deferred message is queued');

  // Hold the lock as a delivery agent would, until qmgr parks the file a minute ahead.
  const file = await until(() => findQueueFile(postfix.layout.queueDir, id), 10_000, 'the queue file', 100);
  holder = spawn('flock', ['--shared', '--no-fork', file, 'sleep', '60'], { stdio: 'ignore' });
  const incoming = join(postfix.layout.queueDir, 'incoming', id);
  await until(
    () => {
      try {
        return statSync(incoming).mtimeMs > Date.now() + 30_000;
      } catch {
        return false;
      }
    },
    30_000,
    'qmgr to park the locked file in incoming a minute ahead',
    100,
  );

  sink.setScript({});
  holder.kill('SIGKILL');
  const releasedAt = Date.now();
  await sink.waitForArrivals(1, 20_000);
  assert.ok(
    Date.now() - releasedAt < 20_000,
    'delivered within seconds of the release, not after the minute',
  );
  assert.deepEqual(sink.arrivals[0]?.rcptTo, ['parked@example.com']);
});
