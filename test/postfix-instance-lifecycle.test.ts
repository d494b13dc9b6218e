/** A per-test Postfix instance starts, delivers, and stops with no process left behind. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { addr, freePort, startSink, testSubnet } from '../harness/index.js';
import { startTestPostfix } from '../harness/postfix.js';
import { descendants, survivors } from '../harness/procs.js';
import { submit } from '../harness/smtp-client.js';
import { masterPid } from '../sidecar/postfix/instance.js';

test('private Postfix instance: start, deliver, stop, nothing left running', async () => {
  const host = addr(testSubnet(), 7);
  const sink = await startSink({ host, port: await freePort(host) });
  const postfix = await startTestPostfix({ transports: [`lifecycle.test smtp:[${host}]:${sink.port}`] });
  try {
    const master = masterPid(postfix.layout);
    assert.ok(master, 'master.pid names a live master');
    await submit({ host: postfix.host, port: postfix.port, from: 'a@apps.test', to: 'x@lifecycle.test' });
    await sink.waitForArrivals(1, 30_000);
    assert.ok(existsSync(postfix.maillog), 'Postfix logs to its own maillog_file');
    const family = [master, ...descendants(master)];
    assert.ok(family.length >= 4, `master plus its daemons (saw ${family.length})`);
    await postfix.stop();
    assert.deepEqual(await survivors(family), [], 'no Postfix process of this instance is left');
    assert.equal(masterPid(postfix.layout), null);
  } finally {
    await postfix.stop();
    await sink.close();
  }
});
