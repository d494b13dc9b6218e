/**
 * The test world's DNS server answers like an authoritative server, over UDP and TCP, as seen by
 * independent clients: Node's c-ares resolver and dns2's TCP client.
 */
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { after, before, test } from 'node:test';
import DNS from 'dns2';
import { splitTxt, startDnsServer, type TestDns } from '../harness/index.js';

let dns: TestDns;

before(async () => {
  dns = await startDnsServer({ ttl: 120, negativeTtl: 45 });
});
after(() => dns.close());

// A fresh resolver per lookup, so no test depends on client-side state left by another.
function resolver(): Resolver {
  const r = new Resolver({ timeout: 2000, tries: 1 });
  r.setServers([dns.address]);
  return r;
}

function tcpQuery(name: string, type: string) {
  return DNS.TCPClient({ dns: dns.host, port: dns.port })(name, type);
}

function udpQuery(name: string, type: string) {
  return DNS.UDPClient({ dns: dns.host, port: dns.port })(name, type);
}

test('listens on a loopback address and reports host:port', () => {
  assert.match(dns.address, /^127\.0\.0\.1:\d+$/);
  assert.equal(dns.address, `${dns.host}:${dns.port}`);
});

test('MX answers over UDP, sorted by the client as set, and the query is logged', async () => {
  dns.mx('mx-udp.test', [
    { exchange: 'mx2.mx-udp.test', priority: 20 },
    { exchange: 'mx1.mx-udp.test.', priority: 10 },
  ]);
  const before = Date.now();
  const mx = await resolver().resolveMx('mx-udp.test');
  mx.sort((x, y) => x.priority - y.priority);
  assert.deepEqual(mx, [
    { exchange: 'mx1.mx-udp.test', priority: 10 },
    { exchange: 'mx2.mx-udp.test', priority: 20 },
  ]);
  const q = dns.queriesFor('MX-UDP.test', 'mx');
  assert.equal(q.length, 1);
  assert.equal(q[0]?.transport, 'udp');
  assert.ok((q[0]?.time ?? 0) >= before);
});

test('MX answers over TCP', async () => {
  dns.mx('mx-tcp.test', [{ exchange: 'mx.mx-tcp.test', priority: 5 }]);
  const res = await tcpQuery('mx-tcp.test', 'MX');
  assert.equal(res.header.rcode, 0);
  assert.deepEqual(
    res.answers.map((a) => [a.exchange, a.priority]),
    [['mx.mx-tcp.test', 5]],
  );
  assert.deepEqual(
    dns.queriesFor('mx-tcp.test').map((q) => q.transport),
    ['tcp'],
  );
});

test('A and AAAA answers carry the TTL set per record', async () => {
  dns.a('host.addr.test', ['127.0.0.10', '127.0.0.11'], { ttl: 300 });
  dns.aaaa('host.addr.test', ['::1']);
  const a = await resolver().resolve4('host.addr.test', { ttl: true });
  assert.deepEqual(
    a.sort((x, y) => x.address.localeCompare(y.address)),
    [
      { address: '127.0.0.10', ttl: 300 },
      { address: '127.0.0.11', ttl: 300 },
    ],
  );
  const aaaa = await resolver().resolve6('host.addr.test', { ttl: true });
  assert.deepEqual(aaaa, [{ address: '::1', ttl: 120 }]);
});

test('long TXT (DKIM key) is split into 255-byte strings of one record; records stay separate', async () => {
  const key = `v=DKIM1; k=rsa; p=${'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'.repeat(12)}`;
  assert.ok(key.length > 500);
  dns.txt('sel._domainkey.txt.test', [key]);
  dns.txt('txt.test', ['v=spf1 ip4:127.0.0.0/8 -all', ['part one ', 'part two']]);
  const dkim = await resolver().resolveTxt('sel._domainkey.txt.test');
  assert.equal(dkim.length, 1);
  assert.ok(dkim[0]!.length >= 3);
  assert.ok(dkim[0]!.every((s) => Buffer.byteLength(s) <= 255));
  assert.equal(dkim[0]!.join(''), key);
  const txt = await resolver().resolveTxt('txt.test');
  assert.deepEqual(
    txt.sort((x, y) => x.length - y.length),
    [['v=spf1 ip4:127.0.0.0/8 -all'], ['part one ', 'part two']],
  );
  // TCP carries the same record.
  const overTcp = await tcpQuery('sel._domainkey.txt.test', 'TXT');
  assert.deepEqual(overTcp.answers[0]?.data, dkim[0]);
});

test('splitTxt never cuts a UTF-8 character', () => {
  const text = 'é'.repeat(300);
  const parts = splitTxt(text);
  assert.equal(parts.join(''), text);
  assert.ok(parts.every((p) => Buffer.byteLength(p) <= 255 && !p.includes('\ufffd')));
});

test('a response too big for UDP is truncated and the client retries over TCP', async () => {
  const records = Array.from({ length: 40 }, (_, i) => `record-${i}-${'x'.repeat(200)}`);
  dns.txt('big.test', records);
  const txt = await resolver().resolveTxt('big.test');
  assert.equal(txt.length, 40);
  const transports = dns.queriesFor('big.test', 'TXT').map((q) => q.transport);
  assert.ok(transports.includes('udp') && transports.includes('tcp'), transports.join(','));
});

test('unknown name is NXDOMAIN with the SOA in authority for negative caching', async () => {
  await assert.rejects(resolver().resolveMx('nowhere.unknown.test'), { code: 'ENOTFOUND' });
  const res = await udpQuery('nowhere.unknown.test', 'MX');
  assert.equal(res.header.rcode, 3);
  assert.equal(res.answers.length, 0);
  const soa = res.authorities[0];
  assert.equal(soa?.type, DNS.Packet.TYPE.SOA);
  assert.equal(soa?.name, 'unknown.test');
  assert.equal(soa?.minimum, 45);
  const overTcp = await tcpQuery('nowhere.unknown.test', 'A');
  assert.equal(overTcp.header.rcode, 3);
});

test('known name, other type: NOERROR with no answers (NODATA) and SOA', async () => {
  dns.a('only-a.nodata.test', ['127.0.0.20']);
  await assert.rejects(resolver().resolveMx('only-a.nodata.test'), { code: 'ENODATA' });
  const res = await udpQuery('only-a.nodata.test', 'MX');
  assert.equal(res.header.rcode, 0);
  assert.equal(res.answers.length, 0);
  assert.equal(res.authorities[0]?.type, DNS.Packet.TYPE.SOA);
  // The parent of a name that exists is an empty non-terminal: NODATA, not NXDOMAIN.
  assert.equal((await udpQuery('nodata.test', 'A')).header.rcode, 0);
});

test('null MX answers MX 0 "."', async () => {
  dns.nullMx('nullmx.test');
  assert.deepEqual(await resolver().resolveMx('nullmx.test'), [{ exchange: '', priority: 0 }]);
});

test('records change and disappear at run time', async () => {
  dns.a('change.test', ['127.0.0.30']);
  dns.mx('change.test', [{ exchange: 'mx.change.test', priority: 10 }]);
  assert.deepEqual(await resolver().resolve4('change.test'), ['127.0.0.30']);
  dns.a('change.test', ['127.0.0.31']);
  assert.deepEqual(await resolver().resolve4('change.test'), ['127.0.0.31']);
  dns.remove('change.test', 'A');
  await assert.rejects(resolver().resolve4('change.test'), { code: 'ENODATA' });
  assert.equal((await resolver().resolveMx('change.test')).length, 1);
  dns.remove('change.test');
  await assert.rejects(resolver().resolveMx('change.test'), { code: 'ENOTFOUND' });
});

test('servfail makes every query for the name fail until turned off', async () => {
  dns.a('flaky.test', ['127.0.0.40']);
  dns.servfail('flaky.test');
  await assert.rejects(resolver().resolve4('flaky.test'), { code: 'ESERVFAIL' });
  assert.equal((await tcpQuery('flaky.test', 'A')).header.rcode, 2);
  dns.servfail('flaky.test', false);
  assert.deepEqual(await resolver().resolve4('flaky.test'), ['127.0.0.40']);
});

test('delay holds the answer for the name', async () => {
  dns.a('slow.test', ['127.0.0.50']);
  dns.a('fast.test', ['127.0.0.51']);
  dns.delay('slow.test', 300);
  const started = Date.now();
  const [slow, fast] = await Promise.all([
    resolver()
      .resolve4('slow.test')
      .then((r) => ({ r, at: Date.now() })),
    resolver()
      .resolve4('fast.test')
      .then((r) => ({ r, at: Date.now() })),
  ]);
  assert.deepEqual(slow.r, ['127.0.0.50']);
  assert.deepEqual(fast.r, ['127.0.0.51']);
  assert.ok(slow.at - started >= 290, `slow answer after ${slow.at - started} ms`);
  assert.ok(fast.at < slow.at);
});

test('bad records are refused with a clear error, not served', () => {
  assert.throws(() => dns.a('bad.test', ['not-an-ip']), { code: 'WORLD_DNS_BAD_RECORD' });
  assert.throws(() => dns.aaaa('bad.test', ['127.0.0.1']), { code: 'WORLD_DNS_BAD_RECORD' });
  assert.throws(() => dns.mx('bad.test', [{ exchange: 'x', priority: 70000 }]), {
    code: 'WORLD_DNS_BAD_RECORD',
  });
  assert.throws(() => dns.txt('bad.test', [['x'.repeat(256)]]), { code: 'WORLD_DNS_BAD_RECORD' });
});

test('refuses to bind outside loopback or to a taken port', async () => {
  await assert.rejects(startDnsServer({ host: '0.0.0.0' }), { code: 'WORLD_NOT_LOOPBACK' });
  await assert.rejects(startDnsServer({ port: dns.port }), { code: 'WORLD_DNS_LISTEN' });
});

test('query log can be cleared', async () => {
  dns.a('log.test', ['127.0.0.60']);
  await resolver().resolve4('log.test');
  assert.ok(dns.queries.length > 0);
  dns.clearQueries();
  assert.equal(dns.queries.length, 0);
  await resolver().resolve4('log.test');
  assert.deepEqual(
    dns.queries.map((q) => [q.name, q.type]),
    [['log.test', 'A']],
  );
});
