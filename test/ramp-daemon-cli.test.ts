/**
 * `freight ramp` as an operator runs it: a real daemon on a real socket, `freight ramp set|show` while it
 * runs, shares that survive a restart, SIGHUP reload, and malformed socketmap input answered, not fatal.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type FreightDaemon, runFreight, startFreight } from '../harness/freight.js';
import { freePort, until } from '../harness/index.js';
import { rampBucket, routesToEngine } from '../sidecar/ramp/hash.js';
import { SocketmapClient } from './ramp-harness.js';

let dir: string;
let conf: string;
let port: number;
let daemon: FreightDaemon | undefined;

const ENGINE = 'freight:inet:127.0.0.1:2526';
const rcpts = Array.from({ length: 400 }, (_, i) => `r${i}@gmail.com`);

const cli = (...args: string[]) => runFreight(['ramp', ...args, '--config', conf]);
const start = async () => {
  daemon = startFreight(['ramp', '--config', conf]);
  await daemon.waitFor(/listening on/);
};
const engineSet = async (client: SocketmapClient) => {
  const out = new Set<string>();
  for (const r of rcpts) {
    const reply = await client.lookup(r);
    if (reply?.status === 'OK') out.add(r);
    else assert.deepEqual(reply, { status: 'NOTFOUND' }, r);
  }
  return out;
};
const expected = (percent: number) => new Set(rcpts.filter((r) => routesToEngine(rampBucket(r), percent)));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'freight-ramp-'));
  port = await freePort();
  conf = join(dir, 'freight.conf');
  writeFileSync(
    conf,
    [
      `acct-db ${join(dir, 'acct.db')}`,
      `run-dir ${join(dir, 'run')}`,
      `postfix-dir ${join(dir, 'postfix')}`,
      `ramp-listener 127.0.0.1:${port}`,
      'smtp-listener 127.0.0.1:2526',
      '',
    ].join('\n'),
  );
});

after(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('ramp set validates its arguments and stores the share', async () => {
  const bad = await cli('set', 'not a domain', '10');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /not a domain name/);
  const tooMuch = await cli('set', 'gmail.com', '150');
  assert.notEqual(tooMuch.code, 0);
  assert.match(tooMuch.stderr, /0\.\.100/);
  const ok = await cli('set', 'Gmail.COM', '10');
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /gmail\.com: 10% to the engine \(was not ramped\)/);
});

test('the running daemon answers by the share and picks up `ramp set` without a restart', async (t) => {
  await start();
  const client = await SocketmapClient.connect('127.0.0.1', port);
  try {
    assert.deepEqual(await engineSet(client), expected(10));
    assert.deepEqual(await client.lookup('*'), { status: 'NOTFOUND' });
    assert.deepEqual(await client.lookup('sender@apps.test'), { status: 'NOTFOUND' });
    const first = [...expected(10)][0]!;
    assert.deepEqual(await client.lookup(first), { status: 'OK', data: ENGINE });

    const set = await cli('set', 'gmail.com', '40');
    assert.equal(set.code, 0, set.stderr);
    const setAt = Date.now();
    const probe = [...expected(40)].find((r) => !expected(10).has(r))!;
    let applied = false;
    while (!applied && Date.now() - setAt < 10_000) {
      applied = (await client.lookup(probe))?.status === 'OK';
      if (!applied) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(applied, 'share 40% applied');
    t.diagnostic(`ramp set → applied in ${Date.now() - setAt} ms after freight ramp set exited`);
    assert.deepEqual(await engineSet(client), expected(40));
  } finally {
    client.close();
  }
});

test('ramp show reports the share and the distinct recipients per path', async () => {
  const want = expected(40).size;
  let rows: Array<Record<string, unknown>> = [];
  await (async () => {
    for (let i = 0; i < 40; i++) {
      const r = await cli('show', '--json');
      rows = JSON.parse(r.stdout);
      if (rows[0]?.engine === want && rows[0]?.postfix === rcpts.length - want) return;
      await new Promise((res) => setTimeout(res, 250));
    }
  })();
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.domain, 'gmail.com');
  assert.equal(rows[0]!.share, 40);
  assert.equal(rows[0]!.engine, want, 'each recipient counted once although asked twice');
  assert.equal(rows[0]!.postfix, rcpts.length - want);
  const human = await cli('show');
  assert.match(human.stdout, /^domain\s+share\s+engine\s+postfix\s+measured\s+since$/m);
  assert.match(human.stdout, new RegExp(`^gmail\\.com\\s+40\\s+${want}\\s+${rcpts.length - want}\\s`, 'm'));
});

test('malformed requests get a PERM reply; the server keeps serving', async () => {
  const a = await SocketmapClient.connect('127.0.0.1', port);
  const b = await SocketmapClient.connect('127.0.0.1', port);
  try {
    assert.deepEqual(await a.raw('9:transport,'), {
      status: 'PERM',
      reason: 'malformed request: expected "name key"',
    });
    assert.equal((await a.lookup('x@gmail.com', 'aliases'))?.status, 'PERM');
    assert.deepEqual(await a.lookup('*'), { status: 'NOTFOUND' }, 'same connection still usable');
    const broken = await b.raw('hello there\r\n');
    assert.equal(broken?.status, 'PERM');
    await until(() => b.isClosed, 5000, 'the broken connection to close', 200);
    const c = await SocketmapClient.connect('127.0.0.1', port);
    assert.deepEqual(await c.lookup('*'), { status: 'NOTFOUND' });
    c.close();
  } finally {
    a.close();
    b.close();
  }
  assert.match(daemon!.output(), /malformed socketmap request/);
});

test('shares survive a restart, and SIGHUP reloads the engine transport', async () => {
  await daemon!.stop();
  await start();
  const client = await SocketmapClient.connect('127.0.0.1', port);
  try {
    assert.deepEqual(await engineSet(client), expected(40));
    writeFileSync(conf, `${readFileSync(conf, 'utf8')}ramp-engine-transport smtp:[127.0.0.1]:2999\n`);
    daemon!.child.kill('SIGHUP');
    await daemon!.waitFor(/configuration reloaded/);
    const probe = [...expected(40)][0]!;
    assert.deepEqual(await client.lookup(probe), { status: 'OK', data: 'smtp:[127.0.0.1]:2999' });
  } finally {
    client.close();
  }
  const off = await cli('set', 'gmail.com', 'off');
  assert.equal(off.code, 0, off.stderr);
  const c2 = await SocketmapClient.connect('127.0.0.1', port);
  let forgotten = false;
  for (let i = 0; i < 100 && !forgotten; i++) {
    forgotten = (await c2.lookup([...expected(40)][0]!))?.status === 'NOTFOUND';
    if (!forgotten) await new Promise((r) => setTimeout(r, 100));
  }
  c2.close();
  assert.ok(forgotten, '`ramp set D off` sends the whole domain back to Postfix');
});
