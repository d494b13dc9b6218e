/**
 * The management API as a real `freight api` process: reads from loopback need no key, state-changing
 * calls need X-API-Key (401 without, 200 with), read CIDRs are enforced by source address, a config
 * without a key refuses every change, and the data routes change the real SQLite state.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type FreightDaemon, startFreight } from '../harness/freight.js';
import { httpCall } from '../harness/http.js';
import { until } from '../harness/index.js';
import { addr, freePort, testSubnet } from '../harness/ports.js';
import { writeFreightConf } from '../harness/postfix.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { loadConfig } from '../sidecar/config/load.js';
import { RampState } from '../sidecar/ramp/state.js';

const KEY = 'test-key-5f1c9a';

describe('freight api: access control and state-changing routes', () => {
  let dir: string;
  let conf: string;
  let api: FreightDaemon;
  let base: { host: string; port: number };
  let allowed: string;
  let other: string;
  const call = (method: string, path: string, opts: { key?: string; body?: unknown; from?: string } = {}) =>
    httpCall(base, method, path, opts);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'freight-api-'));
    const net = testSubnet();
    allowed = addr(net, 2);
    other = addr(net, 3);
    base = { host: '127.0.0.1', port: await freePort() };
    conf = await writeFreightConf(dir, {
      globals: { 'http-mgmt-listener': `127.0.0.1:${base.port}`, 'http-api-key': KEY },
    });
    api = startFreight(['api', '--config', conf]);
    await api.waitFor(/listening on http:\/\/127\.0\.0\.1:/);
  });

  after(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('defaults to a loopback listener and loopback-only reads', () => {
    const path = join(dir, 'defaults.conf');
    writeFileSync(path, `run-dir ${dir}/run2\n`);
    const g = loadConfig(path).global;
    assert.deepEqual(g.httpMgmtListener, { host: '127.0.0.1', port: 8190 });
    assert.deepEqual(g.httpReadAllow, ['127.0.0.0/8', '::1/128']);
    assert.equal(g.httpApiKey, null);
  });

  it('answers reads from loopback without a key; engine down is a coded 503', async () => {
    const r = await call('GET', '/status', { from: other });
    assert.equal(r.status, 503);
    assert.equal(r.json.error.code, 'ENGINE_UNAVAILABLE');
    const ramp = await call('GET', '/ramp', { from: other });
    assert.equal(ramp.status, 200);
    assert.deepEqual(ramp.json, []);
  });

  it('refuses state-changing calls without the key (401) and runs them with it (200)', async () => {
    const none = await call('POST', '/reload');
    assert.equal(none.status, 401);
    assert.equal(none.json.error.code, 'API_KEY_REQUIRED');
    const wrong = await call('POST', '/reload', { key: `${KEY}x` });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error.code, 'API_KEY_INVALID');
    const ok = await call('POST', '/reload', { key: KEY });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.json.daemons, [{ name: 'api', pid: api.pid }]);
    await api.waitFor(/configuration reloaded/);

    const pause = await call('POST', '/queues/example.com/pause', { body: {} });
    assert.equal(pause.status, 401);
    const pauseWithKey = await call('POST', '/queues/example.com/pause', { key: KEY, body: {} });
    assert.equal(pauseWithKey.status, 503, 'past the key check, the engine is not running');
    assert.equal(pauseWithKey.json.error.code, 'ENGINE_UNAVAILABLE');
  });

  it('validates bodies with coded 400s', async () => {
    const extra = await call('POST', '/queues/example.com/pause', { key: KEY, body: { bogus: 1 } });
    assert.equal(extra.status, 400);
    assert.equal(extra.json.error.code, 'API_BAD_REQUEST');
    const percent = await call('PUT', '/ramp/example.com', { key: KEY, body: { percent: 150 } });
    assert.equal(percent.status, 400);
    assert.equal(percent.json.error.code, 'RAMP_BAD_PERCENT');
    const by = await call('GET', '/acct/summary?by=planet');
    assert.equal(by.status, 400);
    assert.equal(by.json.error.code, 'API_BAD_REQUEST');
    const missing = await call('GET', '/no/such/route');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.code, 'API_NOT_FOUND');
  });

  it('adds, checks and removes suppressions in the accounting database', async () => {
    const add = await call('POST', '/suppression', {
      key: KEY,
      body: { address: 'Someone@Example.COM', reason: 'asked to stop', expiresAt: '30d' },
    });
    assert.equal(add.status, 201, add.text);
    assert.equal(add.json.key, 'someone@example.com');
    const store = AcctStore.open(join(dir, 'acct.db'), { readonly: true });
    try {
      const row = store.db.prepare('SELECT * FROM suppression WHERE key = ?').get('someone@example.com') as {
        reason: string;
        source: string;
        expiresAt: number;
      };
      assert.equal(row.reason, 'asked to stop');
      assert.equal(row.source, 'manual');
      assert.ok(row.expiresAt > Date.now() + 29 * 86_400_000);
    } finally {
      store.close();
    }
    const check = await call('GET', '/suppression?address=someone%40example.com');
    assert.equal(check.json.suppressed, true);
    const list = await call('GET', '/suppression?source=manual');
    assert.deepEqual(
      list.json.map((e: { key: string }) => e.key),
      ['someone@example.com'],
    );
    assert.equal((await call('DELETE', '/suppression/someone@example.com')).status, 401);
    const del = await call('DELETE', '/suppression/someone@example.com', { key: KEY });
    assert.equal(del.status, 200);
    const again = await call('DELETE', '/suppression/someone@example.com', { key: KEY });
    assert.equal(again.status, 404);
    assert.equal(again.json.error.code, 'SUPPRESS_NOT_FOUND');
    assert.equal((await call('GET', '/suppression?address=someone%40example.com')).json.suppressed, false);
  });

  it('sets a ramp share that RampState (and so the ramp daemon) reads', async () => {
    const put = await call('PUT', '/ramp/Example.COM', { key: KEY, body: { percent: 12.5 } });
    assert.equal(put.status, 200, put.text);
    assert.deepEqual(put.json, { domain: 'example.com', before: null, percent: 12.5 });
    const state = RampState.open(join(dir, 'acct.db'));
    try {
      assert.deepEqual(
        state.shares().map((s) => [s.domain, s.percent]),
        [['example.com', 12.5]],
      );
    } finally {
      state.close();
    }
    const off = await call('PUT', '/ramp/example.com', { key: KEY, body: { percent: 'off' } });
    assert.equal(off.json.before, 12.5);
    assert.deepEqual((await call('GET', '/ramp')).json, []);
  });

  it('enforces http-read-allow by source address, with the key as the way in', async () => {
    const text = await writeFreightConf(dir, {
      globals: {
        'http-mgmt-listener': `127.0.0.1:${base.port}`,
        'http-api-key': KEY,
        'http-read-allow': `${allowed}/32`,
      },
    });
    assert.equal(text, conf);
    api.child.kill('SIGHUP');
    await until(
      async () => (await call('GET', '/ramp', { from: other })).status === 401,
      10_000,
      'condition',
      100,
    );

    const denied = await call('GET', '/ramp', { from: other });
    assert.equal(denied.status, 401);
    assert.equal(denied.json.error.code, 'API_KEY_REQUIRED');
    assert.equal((await call('GET', '/metrics', { from: other })).status, 401);
    assert.equal((await call('GET', '/ramp', { from: other, key: KEY })).status, 200);
    assert.equal((await call('GET', '/ramp', { from: allowed })).status, 200);
    assert.equal((await call('GET', '/metrics', { from: allowed })).status, 200);
  });

  it('refuses every state-changing call when no key is configured', async () => {
    await writeFreightConf(dir, {
      globals: { 'http-mgmt-listener': `127.0.0.1:${base.port}`, 'http-read-allow': `${allowed}/32` },
    });
    api.child.kill('SIGHUP');
    await until(
      async () => (await call('POST', '/reload', { key: KEY })).status === 403,
      10_000,
      'condition',
      100,
    );
    const r = await call('POST', '/reload', { key: KEY });
    assert.equal(r.json.error.code, 'API_KEY_NOT_CONFIGURED');
    const read = await call('GET', '/ramp', { from: other, key: KEY });
    assert.equal(read.status, 403);
    assert.equal(read.json.error.code, 'API_READ_FORBIDDEN');
    assert.equal((await call('GET', '/ramp', { from: allowed })).status, 200);
  });
});
