/**
 * Deliverability through the engine, measured at the sinks: warm-up caps hold per day and the plan
 * stalls when bounces rise (simulated clock drives the warm-up days); mail the engine delivers carries
 * DKIM signatures that verify (independent RFC 6376 verifier, keys in the test DNS), and a missing key
 * defers or sends unsigned as dkim-required says; a DNSBL listing in the test DNS disables the IP within
 * one check interval and its mail then goes from the other pool member.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { until } from '../harness/index.js';
import type { Clock, CronStarter } from '../sidecar/deliverability/clock.js';
import { ManualClock } from '../sidecar/deliverability/clock.js';
import { reverseIp } from '../sidecar/deliverability/dnsbl.js';
import { independentVerify, testResolver } from './dkim-verify.js';
import { poolOfTwo, startWorld } from './engine-delivery-harness.js';

const DAY = 86_400_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Cron on the simulated clock: every schedule here is daily, so it fires each simulated day. */
function dailyOn(clock: Clock): CronStarter {
  return (_expr, fn) => {
    let cancel = () => {};
    const arm = () => {
      cancel = clock.setTimer(() => {
        arm();
        void fn();
      }, DAY);
    };
    arm();
    return { stop: () => cancel() };
  };
}

describe('deliverability through the engine: warm-up, DKIM, DNSBL', () => {
  it('warm-up caps hold per day, advance, and stall when bounces rise', async () => {
    const clock = new ManualClock(Date.now());
    const w = await startWorld(
      ({ ip }) => `
<virtual-mta w1>
  smtp-source-host ${ip(11)} w1.engine.test
</virtual-mta>
<warmup-plan new-ips>
  virtual-mta w1
  provider warm.test
  day 1 5
  day 2 10
  day 3 20
  hold-if-bounce-rate 10%
  hold-min-samples 5
</warmup-plan>
<domain warm.test>
  virtual-mta w1
  max-smtp-out 2
</domain>
`,
      { deliverability: { clock, cron: dailyOn(clock) } },
    );
    try {
      const sink = await w.startSink(21, {
        rcptTo: [{ match: /^bad-/, code: 550, message: '5.1.1 User unknown' }],
      });
      w.mxAt('warm.test', 21);
      const tq = (kind: string) => w.rows("type = 'tq' AND dsnAction = ? AND vmta = 'w1'", kind);
      let seq = 0;
      const send = (local: string) =>
        w.scheduler.submit(w.message(`warm${seq++}`, [`${local}${seq}@warm.test`]));

      // Day 1: cap 5.
      for (let i = 0; i < 8; i++) send('g');
      await sink.waitForArrivals(5, 20_000);
      await sleep(2000);
      assert.equal(sink.arrivals.length, 5, 'day 1 cap holds');
      assert.equal(w.scheduler.queuedRecipients(), 3, 'the rest waits, nothing bounced');

      // Day 2: cap 10 — the 3 waiting go, then 4 bouncing and 3 good ones.
      clock.advance(DAY);
      assert.equal(tq('warmup-advanced').length, 1);
      await sink.waitForArrivals(8, 20_000);
      for (let i = 0; i < 4; i++) send('bad-');
      for (let i = 0; i < 3; i++) send('g');
      await sink.waitForArrivals(11, 20_000);
      // Every outcome recorded (the sink sees DATA end before the engine sees its reply).
      await until(() => w.rows("type IN ('d','b')").length === 15, 20_000, 'outcomes');

      // Day 3 held at day 2 (bounce rate 40% > 10%): still 10 a day.
      clock.advance(DAY);
      assert.equal(tq('warmup-held').length, 1);
      assert.match(String(tq('warmup-held')[0]!.dsnDiag), /bounce rate 40\.0% above 10\.0%/);
      for (let i = 0; i < 15; i++) send('g');
      await sink.waitForArrivals(21, 20_000);
      await sleep(2000);
      assert.equal(sink.arrivals.length, 21, 'held day keeps the day-2 cap of 10');
      await until(() => w.rows("type = 'd'").length === 21, 20_000, 'outcomes');
      assert.equal(w.scheduler.queuedRecipients(), 5);

      // A clean day advances to day 3 (cap 20): the waiting 5 go.
      clock.advance(DAY);
      assert.equal(tq('warmup-advanced').length, 2);
      await sink.waitForArrivals(26, 20_000);
      await until(() => w.scheduler.queuedRecipients() === 0, 20_000, 'queue empty');
      assert.ok(sink.arrivals.every((a) => a.sourceIp === w.ip(11)));
    } finally {
      await w.close();
    }
  });

  it('mail delivered by the engine carries a DKIM signature that verifies; a missing key defers or goes unsigned', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    let keyPath = '';
    const w = await startWorld(({ ip }) => {
      keyPath = join('/tmp', `freight-dkim-${process.pid}-${Date.now()}.pem`);
      writeFileSync(keyPath, rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      return `
domain-key s1,example.net,${keyPath}
<virtual-mta mta1>
  smtp-source-host ${ip(11)} mta1.engine.test
</virtual-mta>
<domain *>
  virtual-mta mta1
  retry-after 1h
</domain>
<domain signed.test>
  dkim-sign yes
</domain>
<domain nokey.test>
  dkim-sign yes
  dkim-identity @nokey.example
</domain>
<domain nokey-ok.test>
  dkim-sign yes
  dkim-identity @nokey.example
  dkim-required no
</domain>
`;
    });
    try {
      const sink = await w.startSink(21, undefined, { keepRaw: true });
      for (const d of ['signed.test', 'nokey.test', 'nokey-ok.test']) {
        w.mxAt(d, 21);
      }
      const der = rsa.publicKey.export({ type: 'spki', format: 'der' });
      w.dns.txt('s1._domainkey.example.net', [`v=DKIM1; k=rsa; p=${der.toString('base64')}`]);
      const resolve = testResolver(w.dns);
      const viaTestDns = async (name: string) => (await resolve(name, 'TXT'))[0]!.join('');

      for (let i = 0; i < 3; i++) w.scheduler.submit(w.message(`dk${i}`, [`u${i}@signed.test`]));
      w.scheduler.submit(w.message('nokey', ['u@nokey.test']));
      w.scheduler.submit(w.message('nokeyok', ['u@nokey-ok.test']));
      await sink.waitForArrivals(4, 20_000);
      await until(
        () => w.rows("type = 't' AND rcpt = 'u@nokey.test'").length === 1,
        20_000,
        'nokey deferral',
      );

      const signed = sink.arrivals.filter((a) => a.rcptTo[0]!.endsWith('@signed.test'));
      assert.equal(signed.length, 3);
      for (const a of signed) {
        assert.equal(a.headers['dkim-signature']?.length, 1);
        assert.match(a.headers['dkim-signature']![0]!, /d=example\.net/);
        assert.equal(
          await independentVerify(a.raw!, viaTestDns),
          true,
          `signature on ${a.rcptTo[0]} verifies`,
        );
        const tampered = Buffer.from(a.raw!.toString('binary').replace('Hello', 'Hallo'), 'binary');
        assert.equal(await independentVerify(tampered, viaTestDns), false);
      }
      const unsigned = sink.arrivals.filter((a) => a.rcptTo[0] === 'u@nokey-ok.test');
      assert.equal(unsigned.length, 1, 'dkim-required no: sent unsigned');
      assert.equal(unsigned[0]!.headers['dkim-signature'], undefined);
      assert.equal(sink.arrivals.filter((a) => a.rcptTo[0] === 'u@nokey.test').length, 0);
      const t = w.rows("type = 't' AND rcpt = 'u@nokey.test'")[0]!;
      assert.match(String(t.dsnDiag), /^smtp;451 4\.7\.0 local error: DKIM_NO_KEY: /);
    } finally {
      await w.close();
    }
  });

  it('a DNSBL listing disables the IP within one check interval; its mail goes from the other pool member', async () => {
    const w = await startWorld(
      ({ ip }) => `
${poolOfTwo(ip)}
<dnsbl bl.test>
  check-schedule "*/3 * * * * *"
</dnsbl>
<domain listed.test>
  virtual-mta-pool pool
  max-msg-rate 5/s
</domain>
`,
    );
    try {
      const sink = await w.startSink(21);
      w.mxAt('listed.test', 21);
      for (let i = 0; i < 10; i++) w.scheduler.submit(w.message(`pre${i}`, [`p${i}@listed.test`]));
      await sink.waitForArrivals(10, 30_000);
      assert.ok(
        sink.arrivals.some((a) => a.sourceIp === w.ip(11)) &&
          sink.arrivals.some((a) => a.sourceIp === w.ip(12)),
      );

      const listedAt = Date.now();
      w.dns.a(`${reverseIp(w.ip(11))}.bl.test`, ['127.0.0.2']);
      await until(() => w.rows("type = 'tq' AND dsnAction = 'dnsbl-listed'").length === 1, 15_000, 'listing');
      const seen = w.rows("type = 'tq' AND dsnAction = 'dnsbl-listed'")[0]!;
      assert.equal(seen.vmta, 'mta1');
      assert.equal(seen.dlvSourceIp, w.ip(11));
      // One check interval (3 s) plus the scheduling jitter of a loaded machine.
      assert.ok(seen.timeLogged! - listedAt <= 3000 + 1500, `listed after ${seen.timeLogged! - listedAt} ms`);

      const start = sink.arrivals.length;
      for (let i = 0; i < 20; i++) w.scheduler.submit(w.message(`post${i}`, [`q${i}@listed.test`]));
      await sink.waitForArrivals(start + 20, 30_000);
      const after = sink.arrivals.slice(start);
      assert.deepEqual(
        after.filter((a) => a.sourceIp !== w.ip(12)).map((a) => a.sourceIp),
        [],
        'after the listing, everything goes from mta2',
      );
    } finally {
      await w.close();
    }
  });
});
