/**
 * Per-queue limits as the remote sees them: max-msg-rate measured at the sink, max-smtp-out as the
 * sink's peak concurrent connections, max-msg-per-connection per connection, and idle connections
 * closed after connection-idle-timeout (open connections reused meanwhile).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { startWorld, type World } from './engine-delivery-harness.js';

describe('engine limits: rate, connections, reuse', () => {
  let w: World;

  before(async () => {
    w = await startWorld(
      ({ ip }) => `
<virtual-mta mta1>
  smtp-source-host ${ip(10)} mta1.engine.test
</virtual-mta>
<domain rate.test>
  virtual-mta mta1
  max-msg-rate 40/s
  max-smtp-out 4
</domain>
<domain conc.test>
  virtual-mta mta1
  max-smtp-out 3
  max-msg-per-connection 5
</domain>
<domain idle.test>
  virtual-mta mta1
  connection-idle-timeout 400ms
</domain>
`,
    );
    await w.startSink(21);
    await w.startSink(22, { dataDelayMs: 30 });
    await w.startSink(23);
    w.dns.mx('rate.test', [{ exchange: 'mx.rate.test', priority: 10 }]);
    w.dns.a('mx.rate.test', [w.ip(21)]);
    w.dns.mx('conc.test', [{ exchange: 'mx.conc.test', priority: 10 }]);
    w.dns.a('mx.conc.test', [w.ip(22)]);
    w.dns.mx('idle.test', [{ exchange: 'mx.idle.test', priority: 10 }]);
    w.dns.a('mx.idle.test', [w.ip(23)]);
  });

  after(async () => {
    await w.close();
  });

  it('holds max-msg-rate at the sink within 10%', async () => {
    const sink = w.sinks.get(w.ip(21))!;
    const n = 120;
    for (let i = 0; i < n; i++) w.scheduler.submit(w.message(`rate${i}`, [`u${i}@rate.test`]));
    await sink.waitForArrivals(n, 20_000);
    const times = sink.arrivalTimes();
    const measured = ((n - 1) * 1000) / (times[n - 1]! - times[0]!);
    assert.ok(Math.abs(measured - 40) / 40 <= 0.1, `measured ${measured.toFixed(1)}/s, want 40/s ±10%`);
    // Paced evenly: no two-second window carries a burst.
    assert.ok(sink.peakArrivals(2000) <= 88, `peak ${sink.peakArrivals(2000)} in 2 s`);
  });

  it('never opens more than max-smtp-out and rotates connections after max-msg-per-connection', async () => {
    const sink = w.sinks.get(w.ip(22))!;
    const n = 60;
    for (let i = 0; i < n; i++) w.scheduler.submit(w.message(`conc${i}`, [`u${i}@conc.test`]));
    await sink.waitForArrivals(n, 20_000);
    assert.equal(sink.maxConcurrentConnections(), 3);
    const perConnection = sink.connections.map((c) => c.messages);
    assert.ok(
      perConnection.every((m) => m <= 5),
      `messages per connection: ${perConnection.join(',')}`,
    );
    assert.ok(sink.connections.length >= n / 5);
  });

  it('reuses an open connection and closes it after connection-idle-timeout', async () => {
    const sink = w.sinks.get(w.ip(23))!;
    w.scheduler.submit(w.message('idle1', ['a@idle.test']));
    await until(() => w.spool.removed.has('idle1'), 5000, 'first delivery final');
    w.scheduler.submit(w.message('idle2', ['b@idle.test']));
    await sink.waitForArrivals(2);
    assert.equal(sink.connections.length, 1, 'second message reused the connection');
    const lastArrival = sink.arrivals[1]!.time;
    await until(() => sink.connections[0]?.closedAt !== undefined, 5000, 'idle close');
    const idleFor = sink.connections[0]!.closedAt! - lastArrival;
    assert.ok(idleFor >= 350, `closed after ${idleFor} ms idle`);
    const q = (await w.scheduler.queues()).find((x) => x.domain === 'idle.test')!;
    assert.equal(q.connections, 0);
    assert.equal(q.delivered, 2);
  });
});
