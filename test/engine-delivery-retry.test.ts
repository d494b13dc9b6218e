/**
 * Transient failures: retry-after schedule, bounce-after expiry (`t` rows then a `b` message-expired
 * row and a DSN), a deferral that later succeeds, next-MX on connection failure and on 421 when
 * smtp-421-means-mx-unavailable says so, and operator pause/resume/schedule.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import { startWorld, type World } from './engine-delivery-harness.js';

describe('engine delivery: retries, expiry, failover', () => {
  let w: World;

  before(async () => {
    w = await startWorld(
      ({ ip }) => `
<virtual-mta mta1>
  smtp-source-host ${ip(10)} mta1.engine.test
</virtual-mta>
<domain *>
  virtual-mta mta1
  retry-after 200ms,400ms
  bounce-after 1500ms
</domain>
<domain failover.test>
  smtp-421-means-mx-unavailable yes
</domain>
<domain sched.test>
  retry-after 1h
  bounce-after 1d
</domain>
<domain later.test>
  retry-after 300ms
  bounce-after 1h
</domain>
`,
    );
    await w.startSink(21, {
      rcptTo: [{ match: /@defer\.test$/, code: 451, message: '4.7.1 Try again later' }],
    });
    await w.startSink(22);
    await w.startSink(23, { connectReply: { code: 421, message: '4.3.2 Service shutting down' } });
    await w.startSink(24, { rcptTo: [{ match: /./, code: 452, message: '4.2.2 Mailbox full' }] });
    w.dns.mx('defer.test', [{ exchange: 'mx.defer.test', priority: 10 }]);
    w.dns.a('mx.defer.test', [w.ip(21)]);
    // First MX has no listener at all; the second one answers.
    w.dns.mx('down.test', [
      { exchange: 'dead.down.test', priority: 5 },
      { exchange: 'live.down.test', priority: 10 },
    ]);
    w.dns.a('dead.down.test', [w.ip(99)]);
    w.dns.a('live.down.test', [w.ip(22)]);
    w.dns.mx('failover.test', [
      { exchange: 'busy.failover.test', priority: 5 },
      { exchange: 'live.failover.test', priority: 10 },
    ]);
    w.dns.a('busy.failover.test', [w.ip(23)]);
    w.dns.a('live.failover.test', [w.ip(22)]);
    await w.startSink(25, { rcptTo: [{ match: /./, code: 450, message: '4.2.0 Greylisted' }] });
    w.dns.mx('sched.test', [{ exchange: 'mx.sched.test', priority: 10 }]);
    w.dns.a('mx.sched.test', [w.ip(25)]);
    w.dns.mx('later.test', [{ exchange: 'mx.later.test', priority: 10 }]);
    w.dns.a('mx.later.test', [w.ip(24)]);
  });

  after(async () => {
    await w.close();
  });

  it('retries on the retry-after schedule, then expires with t rows followed by a b row', async () => {
    const msg = w.message('expire', ['x@defer.test']);
    w.scheduler.submit(msg);
    await until(() => w.spool.removed.has('expire'), 8000, 'expiry');
    const rows = w.rows('messageId = ?', 'expire');
    const types = rows.map((r) => r.type);
    assert.ok(types.length >= 3, `rows: ${types.join(',')}`);
    assert.deepEqual(types.slice(0, -1), Array(types.length - 1).fill('t'));
    assert.equal(types.at(-1), 'b');
    const ts = rows.filter((r) => r.type === 't');
    assert.deepEqual(
      ts.map((r) => r.attempt),
      ts.map((_, i) => i + 1),
    );
    assert.equal(ts[0]!.dsnStatus, '4.7.1');
    assert.equal(ts[0]!.dsnDiag, 'smtp;451 4.7.1 Try again later');
    // Second retry waits longer than the first (200 ms, then 400 ms repeating).
    const gap1 = ts[1]!.timeLogged - ts[0]!.timeLogged;
    const gap2 = ts[2] ? ts[2].timeLogged - ts[1]!.timeLogged : 400;
    assert.ok(gap1 >= 180 && gap2 >= 380, `gaps ${gap1}, ${gap2}`);
    const b = rows.at(-1)!;
    assert.equal(b.bounceCat, 'message-expired');
    assert.equal(b.dsnAction, 'failed');
    assert.match(b.dsnDiag ?? '', /4\.7\.1 Try again later/);
    assert.ok(b.timeLogged - msg.receivedAt >= 1500);
    assert.deepEqual(
      w.dsns.filter((d) => d.msg.id === 'expire').map((d) => d.rcpts.map((r) => r.rcpt)),
      [['x@defer.test']],
    );
    assert.equal(msg.recipients[0]?.state, 'bounced');
    assert.ok(w.spool.updates.some((u) => u.messageId === 'expire' && u.state === 'bounced'));
    assert.equal(w.suppression.check('x@defer.test'), undefined, 'expiry is not a hard bounce');
  });

  it('delivers on a later attempt once the remote accepts', async () => {
    const sink = w.sinks.get(w.ip(24))!;
    w.scheduler.submit(w.message('later', ['y@later.test']));
    await until(() => w.rows("messageId = 'later' AND type = 't'").length === 1, 5000, 'first deferral');
    sink.setScript({});
    await until(() => w.spool.removed.has('later'), 5000, 'delivery');
    const rows = w.rows('messageId = ?', 'later');
    assert.deepEqual(
      rows.map((r) => [r.type, r.attempt]),
      [
        ['t', 1],
        ['d', 2],
      ],
    );
    assert.equal(rows[0]!.bounceCat, 'quota-issues');
  });

  it('moves to the next MX when the first refuses connections', async () => {
    const live = w.sinks.get(w.ip(22))!;
    const before = live.arrivals.length;
    w.scheduler.submit(w.message('down', ['z@down.test']));
    await until(() => w.spool.removed.has('down'), 8000, 'delivery via second MX');
    assert.equal(live.arrivals.length, before + 1);
    const d = w.rows("messageId = 'down'")[0]!;
    assert.equal(d.type, 'd');
    assert.equal(d.dsnMta, `live.down.test (${w.ip(22)})`);
  });

  it('treats a 421 greeting as MX unavailable when configured', async () => {
    const busy = w.sinks.get(w.ip(23))!;
    w.scheduler.submit(w.message('f421', ['q@failover.test']));
    await until(() => w.spool.removed.has('f421'), 8000, 'delivery via second MX');
    assert.ok(busy.connections.length >= 1, 'first MX was tried');
    const rows = w.rows("messageId = 'f421'");
    assert.deepEqual(
      rows.map((r) => r.type),
      ['d'],
    );
  });

  it('holds a paused queue and releases it on resume', async () => {
    const sink = w.sinks.get(w.ip(22))!;
    w.dns.mx('hold.test', [{ exchange: 'mx.hold.test', priority: 10 }]);
    w.dns.a('mx.hold.test', [w.ip(22)]);
    await w.scheduler.pause('hold.test');
    const before = sink.arrivals.length;
    w.scheduler.submit(w.message('held', ['h@hold.test']));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sink.arrivals.length, before, 'nothing sent while paused');
    const q = (await w.scheduler.queues()).find((x) => x.domain === 'hold.test')!;
    assert.equal(q.paused, true);
    assert.equal(q.depth, 1);
    const res = await w.scheduler.resume('hold.test');
    assert.deepEqual(res.queues, ['hold.test/mta1']);
    await until(() => w.spool.removed.has('held'), 5000, 'delivery after resume');
  });

  it('retries a deferred recipient at once on schedule', async () => {
    w.scheduler.submit(w.message('sched', ['s@sched.test']));
    await until(() => w.rows("messageId = 'sched' AND type = 't'").length === 1, 5000, 'deferral');
    const q = (await w.scheduler.queues()).find((x) => x.domain === 'sched.test')!;
    assert.ok((q.nextAttemptAt ?? 0) > Date.now() + 3_000_000, 'next attempt an hour out');
    w.sinks.get(w.ip(25))!.setScript({});
    const res = await w.scheduler.schedule('sched.test');
    assert.deepEqual(res, { domain: 'sched.test', rescheduled: 1 });
    await until(() => w.spool.removed.has('sched'), 5000, 'delivery after schedule');
    assert.deepEqual(
      w.rows("messageId = 'sched'").map((r) => r.type),
      ['t', 'd'],
    );
  });
});
