/**
 * End to end: mail submitted to a real private Postfix is handed by its transport map to the engine,
 * which delivers it to the right sink MX from the right virtual MTA (source IP and EHLO name) and
 * writes `d` rows linked to the Postfix queue id.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  addr,
  freePort,
  type Sink,
  startDnsServer,
  startSink,
  type TestDns,
  testSubnet,
  until,
} from '../harness/index.js';
import { startTestPostfix, type TestPostfix } from '../harness/postfix.js';
import { submit } from '../harness/smtp-client.js';
import type { AcctRecord } from '../sidecar/acct/record.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { EngineDaemon } from '../sidecar/engine/daemon.js';

const subnet = testSubnet();
const ip = (n: number) => addr(subnet, n);
let dns: TestDns;
let postfix: TestPostfix;
let engine: EngineDaemon;
const sinks: Sink[] = [];

before(async () => {
  dns = await startDnsServer({ host: ip(53) });
  const port = await freePort(ip(21));
  sinks.push(await startSink({ host: ip(21), port }), await startSink({ host: ip(22), port }));
  dns.mx('isp-a.test', [{ exchange: 'mx.isp-a.test', priority: 10 }]);
  dns.a('mx.isp-a.test', [ip(21)]);
  dns.mx('isp-b.test', [{ exchange: 'mx.isp-b.test', priority: 10 }]);
  dns.a('mx.isp-b.test', [ip(22)]);
  postfix = await startTestPostfix({
    globals: { 'dns-server': dns.address, 'remote-smtp-port': String(port) },
    freightConf: `
<virtual-mta mta1>
  smtp-source-host ${ip(10)} mta1.freight.test
</virtual-mta>
<virtual-mta mta2>
  smtp-source-host ${ip(11)} mta2.freight.test
</virtual-mta>
<virtual-mta-pool bulk>
  virtual-mta mta1
  virtual-mta mta2
</virtual-mta-pool>
<domain isp-a.test>
  route-via engine
  virtual-mta-pool bulk
</domain>
<domain isp-b.test>
  route-via engine
  virtual-mta mta2
</domain>
`,
  });
  engine = await EngineDaemon.start(postfix.configPath);
});

after(async () => {
  await engine?.stop();
  await postfix?.stop();
  for (const s of sinks) await s.close();
  await dns?.close();
});

test('Postfix → engine → sink: right MX, source IP and EHLO, d rows linked to the Postfix queue id', async () => {
  for (let i = 0; i < 6; i++) {
    await submit({
      host: postfix.host,
      port: postfix.port,
      from: 'app@apps.test',
      to: `user${i}@isp-a.test`,
    });
  }
  await submit({ host: postfix.host, port: postfix.port, from: 'app@apps.test', to: 'someone@isp-b.test' });
  const [sinkA, sinkB] = sinks as [Sink, Sink];
  await sinkA.waitForArrivals(6, 60_000);
  await sinkB.waitForArrivals(1, 60_000);

  const seen = new Set(sinkA.arrivals.map((a) => `${a.sourceIp} ${a.ehlo}`));
  assert.deepEqual([...seen].sort(), [`${ip(10)} mta1.freight.test`, `${ip(11)} mta2.freight.test`]);
  assert.equal(sinkB.arrivals[0]?.sourceIp, ip(11));
  assert.equal(sinkB.arrivals[0]?.ehlo, 'mta2.freight.test');

  const store = AcctStore.open(join(postfix.dir, 'acct.db'), { readonly: true });
  try {
    let rows: AcctRecord[] = [];
    await until(
      () => {
        rows = store.db
          .prepare("SELECT * FROM acct WHERE type = 'd' AND path = 'engine'")
          .all() as AcctRecord[];
        return rows.length === 7;
      },
      15_000,
      '7 engine d rows',
    );
    for (const r of rows) {
      assert.ok(r.postfixQueueId, 'linked to the Postfix queue id');
      assert.equal(r.dlvDestinationIp, r.rcptDomain === 'isp-a.test' ? ip(21) : ip(22));
      assert.equal(r.dlvSourceIp, r.vmta === 'mta1' ? ip(10) : ip(11));
    }
  } finally {
    store.close();
  }
});
