/**
 * Pause/resume semantics: `pause(domain)` holds every queue of the domain; `resume(domain, vmta)` releases
 * that one queue (its mail arrives) while the domain's other queues stay held; `resume(domain)` releases all.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { poolOfTwo, startWorld, type World } from './engine-delivery-harness.js';

describe('pause and resume of queues', () => {
  let w: World;

  before(async () => {
    w = await startWorld(
      ({ ip }) => `
${poolOfTwo(ip)}
<domain p.test>
  virtual-mta-pool pool
</domain>
`,
    );
    await w.startSink(21);
    w.dns.mx('p.test', [{ exchange: 'mx.p.test', priority: 10 }]);
    w.dns.a('mx.p.test', [w.ip(21)]);
  });

  after(async () => {
    await w.close();
  });

  it('resume(domain, vmta) after pause(domain) releases that queue only', async () => {
    const sink = w.sinks.get(w.ip(21))!;
    w.scheduler.pause('p.test');
    for (let i = 0; i < 10; i++) w.scheduler.submit(w.message(`p${i}`, [`u${i}@p.test`]));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(sink.arrivals.length, 0, 'domain pause holds queues created after it');

    const r = await w.scheduler.resume('p.test', 'mta1');
    assert.deepEqual(r.queues, ['p.test/mta1']);
    await sink.waitForArrivals(5, 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(sink.arrivals.length, 5);
    assert.ok(
      sink.arrivals.every((a) => a.sourceIp === w.ip(11)),
      'only the resumed queue sent',
    );
    const infos = await w.scheduler.queues();
    assert.deepEqual(infos.map((q) => [q.vmta, q.paused]).sort(), [
      ['mta1', false],
      ['mta2', true],
    ]);

    await w.scheduler.resume('p.test');
    await sink.waitForArrivals(10, 20_000);
    assert.equal(sink.arrivals.filter((a) => a.sourceIp === w.ip(12)).length, 5);
  });
});
