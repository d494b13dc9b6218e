/**
 * End to end: mail submitted to a real private Postfix is handed by its transport map to the engine,
 * which delivers it to the right sink MX from the right virtual MTA (source IP and EHLO name) and
 * writes `d` rows linked to the Postfix queue id.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type Sink, until } from '../harness/index.js';
import type { TestPostfix } from '../harness/postfix.js';
import { type PostfixEngineWorld, startPostfixEngineWorld } from '../harness/postfix-engine-world.js';
import { submit } from '../harness/smtp-client.js';
import type { AcctRecord } from '../sidecar/acct/record.js';
import { AcctStore } from '../sidecar/acct/store.js';

let world: PostfixEngineWorld;
let ip: (n: number) => string;
let postfix: TestPostfix;
let sinks: Sink[];

before(async () => {
  world = await startPostfixEngineWorld({
    sinks: [{ at: 21 }, { at: 22 }],
    mx: { 'isp-a.test': 21, 'isp-b.test': 22 },
    freightConf: (ip) => `
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
  ({ ip, postfix, sinks } = world);
});

after(async () => {
  await world?.stop();
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
