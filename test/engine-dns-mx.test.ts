/**
 * The engine's resolver and MX selection against the loopback DNS server: preference order, shuffling
 * among equal preference, implicit MX, null MX, NXDOMAIN, TTL and negative caching, SERVFAIL and timeouts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDns } from '../harness/index.js';
import { createDnsResolver } from '../sidecar/dns/resolver.js';
import { planMx } from '../sidecar/engine/deliver/mx.js';

const v4 = new Set<4 | 6>([4]);

describe('engine DNS and MX selection', () => {
  let dns: TestDns;

  before(async () => {
    dns = await startDnsServer({ negativeTtl: 1 });
  });
  after(async () => {
    await dns.close();
  });

  const resolver = (opts: { timeoutMs?: number } = {}) =>
    createDnsResolver({ server: { host: dns.host, port: dns.port }, ...opts });

  it('orders MX hosts by preference and shuffles equal preferences', async () => {
    dns.mx('order.test', [
      { exchange: 'c.order.test', priority: 20 },
      { exchange: 'a.order.test', priority: 10 },
      { exchange: 'b.order.test', priority: 10 },
    ]);
    dns.a('a.order.test', ['127.0.0.11']);
    dns.a('b.order.test', ['127.0.0.12']);
    dns.a('c.order.test', ['127.0.0.13']);
    const r = resolver();
    const firsts = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const plan = await planMx(r, 'order.test', { bounceUponNoMx: true, families: v4 });
      assert.equal(plan.kind, 'hosts');
      if (plan.kind !== 'hosts') return;
      assert.deepEqual(
        plan.hosts.map((h) => h.preference),
        [10, 10, 20],
      );
      assert.equal(plan.hosts[2]?.name, 'c.order.test');
      firsts.add(plan.hosts[0]?.name ?? '');
    }
    assert.deepEqual([...firsts].sort(), ['a.order.test', 'b.order.test']);
  });

  it('uses the domain address as implicit MX and bounces null MX and NXDOMAIN', async () => {
    dns.a('implicit.test', ['127.0.0.21']);
    dns.nullMx('null.test');
    const r = resolver();
    const implicit = await planMx(r, 'implicit.test', { bounceUponNoMx: true, families: v4 });
    assert.deepEqual(implicit, {
      kind: 'hosts',
      hosts: [{ name: 'implicit.test', preference: 0, addresses: ['127.0.0.21'] }],
    });
    const nullMx = await planMx(r, 'null.test', { bounceUponNoMx: false, families: v4 });
    assert.equal(nullMx.kind, 'permanent');
    const nx = await planMx(r, 'missing.test', { bounceUponNoMx: true, families: v4 });
    assert.equal(nx.kind, 'permanent');
    // Without bounce-upon-no-mx a missing domain is retried rather than bounced.
    const nxRetry = await planMx(r, 'missing.test', { bounceUponNoMx: false, families: v4 });
    assert.equal(nxRetry.kind, 'temporary');
  });

  it('caches answers for their TTL and negative answers for the SOA minimum', async () => {
    dns.mx('cached.test', [{ exchange: 'mx.cached.test', priority: 1 }], { ttl: 1 });
    dns.a('mx.cached.test', ['127.0.0.31'], { ttl: 60 });
    const r = resolver();
    dns.clearQueries();
    await r.mx('cached.test');
    await r.mx('cached.test');
    await r.mx('nothere.test');
    await r.mx('nothere.test');
    assert.equal(dns.queriesFor('cached.test', 'MX').length, 1);
    assert.equal(dns.queriesFor('nothere.test', 'MX').length, 1);
    await new Promise((res) => setTimeout(res, 1100));
    await r.mx('cached.test');
    await r.mx('nothere.test');
    assert.equal(dns.queriesFor('cached.test', 'MX').length, 2, 'TTL expired: asked again');
    assert.equal(dns.queriesFor('nothere.test', 'MX').length, 2, 'negative TTL expired: asked again');
  });

  it('shares one query among concurrent lookups', async () => {
    dns.mx('shared.test', [{ exchange: 'mx.shared.test', priority: 1 }]);
    const r = resolver();
    dns.clearQueries();
    await Promise.all(Array.from({ length: 10 }, () => r.mx('shared.test')));
    assert.equal(dns.queriesFor('shared.test', 'MX').length, 1);
  });

  it('turns SERVFAIL and timeouts into temporary failures', async () => {
    dns.servfail('broken.test');
    dns.mx('slow.test', [{ exchange: 'mx.slow.test', priority: 1 }]);
    dns.delay('slow.test', 2000);
    const r = resolver({ timeoutMs: 200 });
    const broken = await planMx(r, 'broken.test', { bounceUponNoMx: true, families: v4 });
    assert.equal(broken.kind, 'temporary');
    const started = Date.now();
    const slow = await planMx(r, 'slow.test', { bounceUponNoMx: true, families: v4 });
    assert.equal(slow.kind, 'temporary');
    assert.ok(Date.now() - started < 1900, 'gave up before the server answered');
  });
});
