/**
 * Queue isolation: a domain whose MX defers every recipient, and one whose MX is slow to greet, must
 * not change another domain's throughput (measured at its sink, against a run without them).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startWorld, until, type World } from './engine-delivery-harness.js';

describe('engine isolation between queues', () => {
  let w: World;

  before(async () => {
    w = await startWorld(
      ({ ip }) => `
<virtual-mta mta1>
  smtp-source-host ${ip(10)} mta1.engine.test
</virtual-mta>
<domain *>
  virtual-mta mta1
</domain>
<domain fast.test>
  max-msg-rate 25/s
  max-smtp-out 4
</domain>
<domain defer.test>
  retry-after 1s
  max-smtp-out 10
  max-rcpt-per-message 1
</domain>
<domain slow.test>
  max-smtp-out 20
</domain>
`,
    );
    await w.startSink(21);
    await w.startSink(22, { rcptTo: [{ match: /./, code: 451, message: '4.7.1 Deferred, try later' }] });
    await w.startSink(23, { bannerDelayMs: 4000 });
    for (const [d, n] of [
      ['fast.test', 21],
      ['defer.test', 22],
      ['slow.test', 23],
    ] as const) {
      w.dns.mx(d, [{ exchange: `mx.${d}`, priority: 10 }]);
      w.dns.a(`mx.${d}`, [w.ip(n)]);
    }
  });

  after(async () => {
    await w.close();
  });

  async function fastRun(tag: string, n: number): Promise<number> {
    const sink = w.sinks.get(w.ip(21))!;
    const start = sink.arrivals.length;
    for (let i = 0; i < n; i++) w.scheduler.submit(w.message(`${tag}${i}`, [`u${i}@fast.test`]));
    await sink.waitForArrivals(start + n, 20_000);
    const times = sink.arrivals.slice(start).map((a) => a.time);
    return ((n - 1) * 1000) / (Math.max(...times) - Math.min(...times));
  }

  it('keeps a domain at full throughput while another defers everything and a third is slow', async () => {
    const alone = await fastRun('alone', 100);

    for (let i = 0; i < 150; i++) w.scheduler.submit(w.message(`def${i}`, [`d${i}@defer.test`]));
    for (let i = 0; i < 100; i++) w.scheduler.submit(w.message(`slow${i}`, [`s${i}@slow.test`]));
    // Both troubled queues are busy before the measurement starts.
    await until(() => w.sinks.get(w.ip(22))!.refusals.length >= 150, 10_000, 'deferrals under way');
    await until(() => w.sinks.get(w.ip(23))!.currentConnections() >= 10, 10_000, 'slow connections open');

    const together = await fastRun('together', 100);
    const deferSink = w.sinks.get(w.ip(22))!;
    assert.ok(
      deferSink.refusals.length >= 300,
      `deferring MX kept being tried: ${deferSink.refusals.length}`,
    );
    assert.ok(
      Math.abs(together - alone) / alone <= 0.1,
      `fast.test: ${alone.toFixed(1)}/s alone, ${together.toFixed(1)}/s next to deferring and slow queues`,
    );
    assert.ok(w.sinks.get(w.ip(23))!.maxConcurrentConnections() >= 10, 'slow MX held many connections');
  });
});
