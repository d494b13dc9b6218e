/**
 * Deliverability reactions through the engine, measured at the sinks: a TSS04 reply puts the queue in
 * backoff (the rate at the sink drops to the backoff rate, then returns after backoff-to-normal-after);
 * a blocklist reply disables one source IP for one domain while the other pool member takes its mail and
 * it keeps sending elsewhere; the ratio trigger fires at its threshold, not below it, and does not flap.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import type { AcctRecord } from '../sidecar/acct/record.js';
import { poolOfTwo, startWorld, type World } from './engine-delivery-harness.js';

const TSS04 = (ip: string) =>
  `4.7.0 [TSS04] Messages from ${ip} temporarily deferred due to unexpected volume or user complaints`;

describe('deliverability reactions through the engine', () => {
  let w: World;
  const tq = (kind: string, queue: string): AcctRecord[] =>
    w.rows("type = 'tq' AND dsnAction = ? AND queue = ?", kind, queue);
  const countBetween = (host: string, t0: number, t1: number, sourceIp?: string) =>
    w.sinks
      .get(w.ip(Number(host)))!
      .arrivalsBetween(t0, t1)
      .filter((a) => sourceIp === undefined || a.sourceIp === sourceIp).length;

  before(async () => {
    w = await startWorld(
      ({ ip }) => `
${poolOfTwo(ip)}
<smtp-pattern-list isp>
  reply /TSS04/ mode=backoff
  reply /blocked using/ disable-source-ip,reenable-after=1h
  reply /4\\.7\\.28 ratio/ mode=backoff,threshold=20%/10m,min-samples=20
</smtp-pattern-list>
<domain *>
  smtp-pattern-list isp
  retry-after 1h
  backoff-retry-after 1h
</domain>
<domain tss.test>
  virtual-mta mta1
  max-smtp-out 2
  max-msg-rate 6/s
  backoff-max-msg-rate 1/s
  backoff-to-normal-after 4s
</domain>
<domain bl-a.test>
  virtual-mta-pool pool
  max-smtp-out 1
</domain>
<domain bl-b.test>
  virtual-mta-pool pool
  max-smtp-out 1
</domain>
<domain r-below.test>
  virtual-mta mta1
  max-smtp-out 1
  max-msg-rate 20/s
  backoff-to-normal-after 1h
</domain>
<domain r-at.test>
  virtual-mta mta1
  max-smtp-out 1
  max-msg-rate 20/s
  backoff-to-normal-after 1h
</domain>
<domain r-over.test>
  virtual-mta mta1
  max-smtp-out 1
  max-msg-rate 20/s
  backoff-to-normal-after 1h
</domain>
`,
    );
    await w.startSink(21, { rcptTo: [{ match: /^trigger@/, code: 421, message: TSS04(w.ip(11)) }] });
    await w.startSink(22, {
      rcptTo: [
        {
          match: /^blockme@/,
          code: 554,
          message: `5.7.1 Service unavailable; Client host [${w.ip(11)}] blocked using bl.example`,
        },
      ],
    });
    await w.startSink(23, {
      rcptTo: [{ match: /^d-/, code: 451, message: '4.7.28 ratio limited, try later' }],
    });
    for (const [d, n] of [
      ['tss.test', 21],
      ['bl-a.test', 22],
      ['bl-b.test', 22],
      ['r-below.test', 23],
      ['r-at.test', 23],
      ['r-over.test', 23],
    ] as const) {
      w.mxAt(d, n);
    }
  });

  after(async () => {
    await w.close();
  });

  it('TSS04 puts the queue in backoff: the rate at the sink drops to the backoff rate, then recovers', async () => {
    const sink = w.sinks.get(w.ip(21))!;
    // Keep a small backlog so the queue always has work, and the trigger does not wait behind much.
    let n = 0;
    const feeder = setInterval(() => {
      while (w.scheduler.queuedRecipients() < 8)
        w.scheduler.submit(w.message(`tss${n}`, [`u${n++}@tss.test`]));
    }, 50);
    try {
      await sink.waitForArrivals(20, 30_000);
      const n0 = Date.now();
      await new Promise((r) => setTimeout(r, 3000));
      const normal = countBetween('21', n0, n0 + 3000) / 3;

      w.scheduler.submit(w.message('tss-trigger', ['trigger@tss.test']));
      await until(() => tq('mode-backoff', 'tss.test/mta1').length === 1, 20_000, 'backoff');
      const tb = tq('mode-backoff', 'tss.test/mta1')[0]!.timeLogged!;
      assert.match(String(tq('mode-backoff', 'tss.test/mta1')[0]!.dsnDiag), /TSS04/);
      await until(() => tq('mode-normal', 'tss.test/mta1').length === 1, 30_000, 'back to normal');
      const tn = tq('mode-normal', 'tss.test/mta1')[0]!.timeLogged!;
      // Backoff window, skipping the first half second (a message already paced before the switch).
      const backoff = countBetween('21', tb + 500, tn) / ((tn - tb - 500) / 1000);
      await new Promise((r) => setTimeout(r, 3500));
      const recovered = countBetween('21', tn + 500, tn + 3500) / 3;
      assert.ok(tn - tb >= 4000, `backoff lasted ${tn - tb} ms, backoff-to-normal-after is 4s`);
      assert.ok(normal >= 4 && normal <= 6.7, `normal rate at the sink ${normal.toFixed(2)}/s (limit 6/s)`);
      assert.ok(backoff <= 1.35, `backoff rate at the sink ${backoff.toFixed(2)}/s (backoff limit 1/s)`);
      assert.ok(backoff >= 0.5, `backoff queue kept sending: ${backoff.toFixed(2)}/s`);
      assert.ok(recovered >= 4, `rate after backoff ${recovered.toFixed(2)}/s`);
      // The TSS04'd recipient was deferred, not bounced.
      assert.equal(w.rows("type = 'b' AND rcpt = 'trigger@tss.test'").length, 0);
      assert.equal(w.rows("type = 't' AND rcpt = 'trigger@tss.test'").length, 1);
    } finally {
      clearInterval(feeder);
    }
  });

  it('a blocklist reply disables that source IP for that domain only; the pool sends from the other IP', async () => {
    const sink = w.sinks.get(w.ip(22))!;
    const [ip1, ip2] = [w.ip(11), w.ip(12)];
    // The trigger goes first from mta1; pool mail queued behind it on mta1 must move to mta2.
    w.scheduler.submit(w.message('bl-trigger', ['blockme@bl-a.test'], { vmtaRequest: 'mta1' }));
    for (let i = 0; i < 10; i++) w.scheduler.submit(w.message(`bla${i}`, [`a${i}@bl-a.test`]));
    await until(() => tq('source-ip-disabled', 'bl-a.test/mta1').length === 1, 20_000, 'source disabled');
    await sink.waitFor(
      (s) => s.arrivals.filter((a) => a.rcptTo[0]!.endsWith('@bl-a.test')).length >= 10,
      30_000,
    );
    for (let i = 0; i < 20; i++) w.scheduler.submit(w.message(`blb${i}`, [`b${i}@bl-b.test`]));
    for (let i = 10; i < 30; i++) w.scheduler.submit(w.message(`bla${i}`, [`a${i}@bl-a.test`]));
    await sink.waitFor((s) => s.arrivals.length >= 50, 60_000, '50 arrivals');

    const toA = sink.arrivals.filter((a) => a.rcptTo[0]!.endsWith('@bl-a.test'));
    const toB = sink.arrivals.filter((a) => a.rcptTo[0]!.endsWith('@bl-b.test'));
    assert.equal(toA.length, 30);
    assert.deepEqual(
      toA.filter((a) => a.sourceIp !== ip2).map((a) => `${a.rcptTo[0]} from ${a.sourceIp}`),
      [],
      'bl-a.test mail all from the other pool member',
    );
    assert.equal(toB.length, 20);
    assert.ok(toB.filter((a) => a.sourceIp === ip1).length >= 5, 'mta1 keeps sending to bl-b.test');
    assert.ok(toB.filter((a) => a.sourceIp === ip2).length >= 5, 'mta2 sends to bl-b.test too');
    // Never bounced: the blocked recipient waits for its (only) vmta to be re-enabled.
    assert.equal(w.rows("type = 'b' AND rcptDomain = 'bl-a.test'").length, 0);
    assert.equal(w.rows("type = 't' AND rcpt = 'blockme@bl-a.test'").length, 1);
    const vmta1 = (await w.scheduler.vmtas()).find((v) => v.name === 'mta1')!;
    assert.equal(vmta1.disabled, true);
    assert.ok(vmta1.disabledUntil !== null && vmta1.disabledUntil > Date.now() + 3_000_000);
  });

  async function ratioRun(domain: string, n: number, deferred: (i: number) => boolean): Promise<void> {
    const sink = w.sinks.get(w.ip(23))!;
    const before = sink.arrivals.length + sink.refusals.length;
    for (let i = 0; i < n; i++) {
      const rcpt = `${deferred(i) ? 'd-' : 'u-'}${i}@${domain}`;
      w.scheduler.submit(w.message(`${domain}-${i}`, [rcpt]));
    }
    await sink.waitFor(
      (s) => s.arrivals.length + s.refusals.length >= before + n,
      60_000,
      `${domain} replies`,
    );
    await until(() => w.rows("type IN ('d','t') AND rcptDomain = ?", domain).length >= n, 10_000, 'rows');
  }

  it('the ratio trigger fires at the threshold, not below it, and does not flap', async () => {
    // 15% deferred (3 in 20): never reaches 20% over any prefix of at least min-samples replies.
    await ratioRun('r-below.test', 100, (i) => [0, 7, 14].includes(i % 20));
    // Exactly 20%: every fifth reply is a deferral.
    await ratioRun('r-at.test', 100, (i) => i % 5 === 4);
    // 30% for 150 replies: the trigger fires once and stays fired (hysteresis), no mode flapping.
    await ratioRun('r-over.test', 150, (i) => i % 10 === 0 || i % 10 === 3 || i % 10 === 6);

    assert.equal(w.rows("type = 't' AND rcptDomain = 'r-below.test'").length, 15);
    assert.equal(tq('rate-decreased', 'r-below.test/mta1').length, 0, 'below the threshold: no action');
    assert.equal(tq('mode-backoff', 'r-below.test/mta1').length, 0);
    assert.equal(tq('rate-decreased', 'r-at.test/mta1').length, 1, 'at the threshold: fires');
    assert.equal(tq('mode-backoff', 'r-at.test/mta1').length, 1);
    assert.equal(tq('rate-decreased', 'r-over.test/mta1').length, 1, 'sustained ratio: fires once');
    assert.equal(tq('mode-backoff', 'r-over.test/mta1').length, 1);
    assert.equal(tq('mode-normal', 'r-over.test/mta1').length, 0);
    const over = (await w.scheduler.queues()).find((q) => q.domain === 'r-over.test')!;
    assert.equal(over.mode, 'backoff');
  });
});
