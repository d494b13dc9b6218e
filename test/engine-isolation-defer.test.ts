/**
 * Queue isolation: a domain whose MX defers every recipient, and one whose MX is slow to greet, must
 * not change another domain's throughput (measured at its sink, against a run without them). The sinks
 * run in a child process, so their arrival stamps do not depend on the engine's event loop.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { type RemoteSink, type SinkProcess, startSinkProcess } from '../harness/sink-process.js';
import { startWorld, type World } from './engine-delivery-harness.js';

describe('engine isolation between queues', () => {
  let w: World;
  let sp: SinkProcess;
  const sink = (n: number): RemoteSink => sp.sinks.get(w.ip(n))!;

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
    sp = await startSinkProcess([
      { host: w.ip(21), port: w.port },
      {
        host: w.ip(22),
        port: w.port,
        script: { rcptTo: [{ match: /./, code: 451, message: '4.7.1 Deferred, try later' }] },
      },
      { host: w.ip(23), port: w.port, script: { bannerDelayMs: 4000 } },
    ]);
    for (const [d, n] of [
      ['fast.test', 21],
      ['defer.test', 22],
      ['slow.test', 23],
    ] as const) {
      w.mxAt(d, n);
    }
  });

  after(async () => {
    await w.close();
    await sp.close();
  });

  async function fastRun(tag: string, n: number): Promise<number> {
    const fast = sink(21);
    const start = fast.arrivals.length;
    for (let i = 0; i < n; i++) w.scheduler.submit(w.message(`${tag}${i}`, [`u${i}@fast.test`]));
    await fast.waitFor((s) => s.arrivals.length >= start + n, 20_000, `${n} arrivals`);
    const times = fast.arrivals.slice(start).map((a) => a.time);
    return ((n - 1) * 1000) / (Math.max(...times) - Math.min(...times));
  }

  it('keeps a domain at full throughput while another defers everything and a third is slow', async () => {
    const alone = await fastRun('alone', 100);

    for (let i = 0; i < 150; i++) w.scheduler.submit(w.message(`def${i}`, [`d${i}@defer.test`]));
    for (let i = 0; i < 100; i++) w.scheduler.submit(w.message(`slow${i}`, [`s${i}@slow.test`]));
    // Both troubled queues are busy before the measurement starts.
    await until(() => sink(22).refusals >= 150, 10_000, 'deferrals under way');
    await until(() => sink(23).open >= 10, 10_000, 'slow connections open');

    const together = await fastRun('together', 100);
    assert.ok(sink(22).refusals >= 300, `deferring MX kept being tried: ${sink(22).refusals}`);
    assert.ok(
      Math.abs(together - alone) / alone <= 0.1,
      `fast.test: ${alone.toFixed(1)}/s alone, ${together.toFixed(1)}/s next to deferring and slow queues`,
    );
    assert.ok(sink(23).max >= 10, 'slow MX held many connections');
  });
});
