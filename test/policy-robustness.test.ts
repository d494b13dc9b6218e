import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort } from '../harness/ports.js';
import { createLogger, setLogSink } from '../sidecar/common/log.js';
import { loadConfig } from '../sidecar/config/load.js';
import { PolicyClient } from '../sidecar/policy/client.js';
import { type PolicyDaemon, startPolicyDaemon } from '../sidecar/policy/daemon.js';

const REQ =
  'request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@x.com\nrecipient=b@y.com\ninstance=1\n\n';
let dir: string;
let daemon: PolicyDaemon;
let port: number;
let socketPath: string;
const logs: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'freight-policy-robust-'));
  port = await freePort();
  socketPath = join(dir, 'policy.sock');
  writeFileSync(
    join(dir, 'freight.conf'),
    [
      `acct-db ${join(dir, 'acct.db')}`,
      `run-dir ${join(dir, 'run')}`,
      `policy-listener 127.0.0.1:${port}`,
      `policy-socket ${socketPath}`,
      '<policy-limit per-sender>',
      '  key sender',
      '  rate 1000000/m',
      '</policy-limit>',
    ].join('\n'),
  );
  setLogSink((line) => logs.push(line));
  daemon = await startPolicyDaemon(loadConfig(join(dir, 'freight.conf')), createLogger('policy'), {
    server: {
      limits: { maxLineLength: 8192, maxRequestLength: 65_536, maxAttributes: 256 },
      requestTimeoutMs: 500,
      writeStallMs: 500,
    },
  });
});

after(async () => {
  await daemon.stop();
  setLogSink((line) => process.stderr.write(line));
  rmSync(dir, { recursive: true, force: true });
});

/** Connect, send, collect what the server writes until it closes (or `ms` passes). */
function exchange(
  data: string | Buffer,
  opts: { halfClose?: boolean; ms?: number } = {},
): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let text = '';
    let closedByServer = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closedByServer });
    }, opts.ms ?? 2000);
    s.on('data', (d) => (text += d.toString()));
    s.on('error', () => {});
    s.on('close', () => {
      closedByServer = true;
      clearTimeout(timer);
      resolve({ text, closedByServer });
    });
    s.write(data, () => {
      if (opts.halfClose) s.end();
    });
  });
}

async function stillServing(): Promise<void> {
  const c = await PolicyClient.connect({ host: '127.0.0.1', port });
  assert.equal(await c.askRaw(REQ), 'DUNNO');
  c.close();
}

test('one connection carries many requests; TCP and the unix socket both answer', async () => {
  const c = await PolicyClient.connect({ host: '127.0.0.1', port });
  for (let i = 0; i < 100; i++) assert.equal(await c.askRaw(REQ), 'DUNNO');
  c.close();
  const u = await PolicyClient.connect({ path: socketPath });
  assert.equal(await u.askRaw(REQ), 'DUNNO');
  u.close();
});

test('pipelined requests in one write get every reply, in order', async () => {
  const { text } = await exchange(REQ.repeat(50), { ms: 500 });
  assert.equal(text, 'action=DUNNO\n\n'.repeat(50));
});

test('a request without request= is answered DUNNO and logged; the connection stays usable', async () => {
  const { text, closedByServer } = await exchange(`sender=a@b\n\n${REQ}`, { ms: 500 });
  assert.equal(text, 'action=DUNNO\n\n'.repeat(2));
  assert.equal(closedByServer, false);
  assert.ok(logs.some((l) => /warning: policy request without request=smtpd_access_policy/.test(l)));
});

test('half-closed after a request missing its empty line: answered, then closed', async () => {
  const { text, closedByServer } = await exchange(REQ.trimEnd(), { halfClose: true });
  assert.equal(text, 'action=DUNNO\n\n');
  assert.ok(closedByServer);
  assert.ok(logs.some((l) => /not terminated by an empty line/.test(l)));
});

test('half-closed after complete requests: all answered before the server closes', async () => {
  const { text, closedByServer } = await exchange(REQ.repeat(3), { halfClose: true });
  assert.equal(text, 'action=DUNNO\n\n'.repeat(3));
  assert.ok(closedByServer);
});

test('a 1 MB line: earlier requests answered, client disconnected with a warning', async () => {
  const { text, closedByServer } = await exchange(`${REQ}sender=${'x'.repeat(1024 * 1024)}`);
  assert.equal(text, 'action=DUNNO\n\n');
  assert.ok(closedByServer);
  assert.ok(logs.some((l) => /warning: disconnecting policy client: line longer than 8192/.test(l)));
  await stillServing();
});

test('binary garbage: disconnected with a warning', async () => {
  const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256));
  const { closedByServer } = await exchange(Buffer.concat([garbage, Buffer.from('\n\n')]));
  assert.ok(closedByServer);
  assert.ok(
    logs.some((l) => /disconnecting policy client: (line \d+ is not name=value|line longer)/.test(l)),
  );
  await stillServing();
});

test('a request that never ends is dropped after the request timeout', async () => {
  const started = Date.now();
  const { text, closedByServer } = await exchange('request=smtpd_access_policy\nsender=a@b\n', { ms: 5000 });
  assert.equal(text, '');
  assert.ok(closedByServer);
  assert.ok(Date.now() - started < 5000);
  assert.ok(logs.some((l) => /incomplete request timed out/.test(l)));
});

test('a client that never reads its replies is cut off; others are unaffected', async () => {
  const s = net.connect({ host: '127.0.0.1', port });
  await new Promise((r) => s.once('connect', r));
  s.pause(); // never read
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.on('error', () => {});
  // Keep sending pipelined requests until the server gives up on us.
  const chunk = REQ.repeat(2000);
  let open = true;
  void closed.then(() => (open = false));
  for (let i = 0; i < 400 && open; i++) {
    if (!s.write(chunk))
      await Promise.race([
        new Promise((r) => s.once('drain', r)),
        closed,
        new Promise((r) => setTimeout(r, 50)),
      ]);
  }
  await stillServing();
  await Promise.race([
    closed,
    new Promise((_, rej) => setTimeout(() => rej(new Error('server kept a non-reading client')), 10_000)),
  ]);
  assert.ok(
    logs.some((l) => /client does not read its replies/.test(l)),
    logs.slice(-5).join(''),
  );
});

test('5,000 concurrent connections are all served', async () => {
  const limit = Number(execFileSync('sh', ['-c', 'ulimit -n']).toString().trim());
  // This process holds both ends of every connection, plus a margin for everything else.
  assert.ok(
    !Number.isFinite(limit) || limit >= 10_500,
    `needs ulimit -n ≥ 10500 for 5,000 loopback connections in one process (have ${limit}); scripts/test.sh raises it`,
  );
  const clients: PolicyClient[] = [];
  for (let i = 0; i < 5000; i += 250) {
    clients.push(
      ...(await Promise.all(
        Array.from({ length: 250 }, () => PolicyClient.connect({ host: '127.0.0.1', port })),
      )),
    );
  }
  const replies = await Promise.all(clients.map((c) => c.askRaw(REQ)));
  assert.equal(replies.filter((r) => r === 'DUNNO').length, 5000);
  const again = await Promise.all(clients.map((c) => c.askRaw(REQ)));
  assert.equal(again.filter((r) => r === 'DUNNO').length, 5000);
  assert.ok(daemon.stats().connections.open >= 5000, 'all 5,000 held open at once');
  for (const c of clients) c.close();
  await stillServing();
});
