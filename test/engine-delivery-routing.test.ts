/**
 * Delivery through the scheduler: MX resolution against the test DNS, vMTA pool round-robin (source
 * IP and EHLO as seen by the sink), per-recipient results, and the accounting rows every attempt writes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { startWorld, type World } from './engine-delivery-harness.js';

describe('engine delivery: routing and outcomes', () => {
  let w: World;

  before(async () => {
    w = await startWorld(
      ({ ip }) => `
<virtual-mta mta1>
  smtp-source-host ${ip(10)} mta1.engine.test
</virtual-mta>
<virtual-mta mta2>
  smtp-source-host ${ip(11)} mta2.engine.test
</virtual-mta>
<virtual-mta-pool marketing>
  virtual-mta mta1
  virtual-mta mta2
</virtual-mta-pool>
<domain a.test>
  virtual-mta-pool marketing
  max-rcpt-per-message 2
</domain>
<domain b.test>
  virtual-mta mta2
</domain>
<domain *>
  retry-after 1h
</domain>
`,
    );
    await w.startSink(21, { rcptTo: [{ match: /^unknown@/, code: 550, message: '5.1.1 User unknown' }] });
    await w.startSink(22);
    w.dns.mx('a.test', [{ exchange: 'mx.a.test', priority: 10 }]);
    w.dns.a('mx.a.test', [w.ip(21)]);
    // b.test has no MX: implicit MX from its A record.
    w.dns.a('b.test', [w.ip(22)]);
  });

  after(async () => {
    await w.close();
  });

  it('spreads a pool round-robin and binds each vmta source IP and EHLO name', async () => {
    const sinkA = w.sinks.get(w.ip(21))!;
    const sinkB = w.sinks.get(w.ip(22))!;
    for (let i = 0; i < 10; i++) w.scheduler.submit(w.message(`pool${i}`, [`user${i}@a.test`]));
    for (let i = 0; i < 4; i++) w.scheduler.submit(w.message(`single${i}`, [`user${i}@b.test`]));
    await sinkA.waitForArrivals(10);
    await sinkB.waitForArrivals(4);

    const bySource = sinkA.arrivalsBySourceIp();
    assert.equal(bySource.get(w.ip(10))?.length, 5);
    assert.equal(bySource.get(w.ip(11))?.length, 5);
    for (const a of sinkA.arrivals) {
      assert.equal(a.ehlo, a.sourceIp === w.ip(10) ? 'mta1.engine.test' : 'mta2.engine.test');
    }
    assert.deepEqual(
      sinkB.arrivals.map((a) => [a.sourceIp, a.ehlo]),
      Array(4).fill([w.ip(11), 'mta2.engine.test']),
    );

    await until(() => w.rows("type = 'd'").length === 14, 5000, '14 d rows');
    const rowsA = w.rows("type = 'd' AND rcptDomain = 'a.test'");
    for (const r of rowsA) {
      assert.equal(r.dsnStatus, '2.0.0');
      assert.match(r.dsnDiag ?? '', /^smtp;250 /);
      assert.equal(r.dsnMta, `mx.a.test (${w.ip(21)})`);
      assert.equal(r.dlvDestinationIp, w.ip(21));
      assert.equal(r.dlvSourceIp, r.vmta === 'mta1' ? w.ip(10) : w.ip(11));
      assert.equal(r.vmtaPool, 'marketing');
      assert.equal(r.queue, `a.test/${r.vmta}`);
      assert.equal(r.path, 'engine');
      assert.equal(r.attempt, 1);
    }
    const rowB = w.rows("type = 'd' AND rcptDomain = 'b.test'")[0]!;
    assert.equal(rowB.vmta, 'mta2');
    assert.equal(rowB.vmtaPool, null);
    assert.equal(rowB.dsnMta, `b.test (${w.ip(22)})`);
    for (let i = 0; i < 10; i++) assert.ok(w.spool.removed.has(`pool${i}`));
  });

  it('reports per-recipient results in one transaction and suppresses hard bounces', async () => {
    const sinkA = w.sinks.get(w.ip(21))!;
    const before = sinkA.arrivals.length;
    const msg = w.message('mixed', ['good1@a.test', 'unknown@a.test', 'good2@a.test']);
    w.scheduler.submit(msg);
    await until(() => w.spool.removed.has('mixed'), 5000, 'message final');
    // max-rcpt-per-message 2: two transactions for three recipients.
    const arrived = sinkA.arrivals
      .slice(before)
      .flatMap((a) => a.rcptTo)
      .sort();
    assert.deepEqual(arrived, ['good1@a.test', 'good2@a.test']);

    const rows = w.rows('messageId = ?', 'mixed');
    const b = rows.find((r) => r.type === 'b')!;
    assert.equal(b.rcpt, 'unknown@a.test');
    assert.equal(b.dsnStatus, '5.1.1');
    assert.equal(b.bounceCat, 'bad-mailbox');
    assert.equal(rows.filter((r) => r.type === 'd').length, 2);
    assert.ok(w.suppression.check('unknown@a.test'), 'hard bounce suppressed');
    assert.deepEqual(
      w.dsns.filter((d) => d.msg.id === 'mixed').flatMap((d) => d.rcpts.map((r) => r.rcpt)),
      ['unknown@a.test'],
    );

    // The suppressed address is now bounced without an attempt.
    const again = w.message('again', ['unknown@a.test']);
    w.scheduler.submit(again);
    await until(() => w.spool.removed.has('again'), 5000, 'suppressed message final');
    const row = w.rows('messageId = ?', 'again')[0]!;
    assert.equal(row.type, 'b');
    assert.equal(row.dlvDestinationIp, null);
    assert.equal(sinkA.arrivals.length, before + 2);
  });

  it('bounces a null-MX domain and an NXDOMAIN one as bad-domain without connecting', async () => {
    w.dns.nullMx('nomail.test');
    w.scheduler.submit(w.message('nullmx', ['x@nomail.test']));
    w.scheduler.submit(w.message('nxdomain', ['x@nowhere.test']));
    await until(() => w.spool.removed.has('nullmx') && w.spool.removed.has('nxdomain'), 5000, 'bounces');
    const nullRow = w.rows('messageId = ?', 'nullmx')[0]!;
    assert.equal(nullRow.type, 'b');
    assert.equal(nullRow.dsnStatus, '5.1.10');
    assert.equal(nullRow.bounceCat, 'bad-domain');
    const nxRow = w.rows('messageId = ?', 'nxdomain')[0]!;
    assert.equal(nxRow.type, 'b');
    assert.equal(nxRow.dsnStatus, '5.1.2');
    assert.equal(nxRow.bounceCat, 'bad-domain');
  });
});
