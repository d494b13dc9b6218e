/**
 * Warm-up caps hold per day, advance on the schedule and stall while bounces are high; a DNSBL listing in
 * the test DNS disables the IP at the next check (and delisting re-enables it), with node-cron running the
 * checks for real.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDnsServer, type TestDns } from '../harness/index.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { AcctWriter } from '../sidecar/acct/writer.js';
import { loadConfig } from '../sidecar/config/load.js';
import type { FreightConfig } from '../sidecar/config/model.js';
import { ManualClock, nodeCronStarter, systemClock } from '../sidecar/deliverability/clock.js';
import { warmupPlans } from '../sidecar/deliverability/config.js';
import { DnsblWatch, resolverLookup, reverseIp } from '../sidecar/deliverability/dnsbl.js';
import { EventRecorder } from '../sidecar/deliverability/events.js';
import { SourceIpState } from '../sidecar/deliverability/source-ip-state.js';
import { WarmupTracker } from '../sidecar/deliverability/warmup.js';

const CONF = `
host-name mta.example.net
<virtual-mta mta1>
  smtp-source-host 127.0.0.11 mta1.example.net
</virtual-mta>
<virtual-mta mta2>
  smtp-source-host 127.0.0.12 mta2.example.net
</virtual-mta>
<warmup-plan new-ip>
  virtual-mta mta1
  provider gmail.test
  day 1 50
  day 2 100
  day 3 200
  hold-if-bounce-rate 5%
  hold-if-deferral-rate 20%
  hold-min-samples 10
</warmup-plan>
<dnsbl bl.test>
  check-schedule "* * * * * *"
  disable-for gmail.test
</dnsbl>
`;

describe('warm-up and DNSBL', () => {
  let dir: string;
  let config: FreightConfig;
  let store: AcctStore;
  let writer: AcctWriter;
  let dns: TestDns;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'freight-warm-'));
    writeFileSync(join(dir, 'freight.conf'), CONF);
    config = loadConfig(join(dir, 'freight.conf'));
    store = AcctStore.open(join(dir, 'acct.db'));
    writer = new AcctWriter(store);
    dns = await startDnsServer();
  });
  after(async () => {
    writer.close();
    store.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const tq = (action: string) => {
    writer.flush();
    return store.db.prepare("SELECT * FROM acct WHERE type = 'tq' AND dsnAction = ?").all(action) as Array<
      Record<string, unknown>
    >;
  };

  test('daily caps hold, advance each day, stall while bounces are high, survive a restart', () => {
    const clock = new ManualClock();
    const statePath = join(dir, 'warmup.json');
    const make = () =>
      new WarmupTracker({ plans: warmupPlans(config), clock, events: new EventRecorder(writer), statePath });
    const w = make();
    const sendDay = (n: number, bounces: number) => {
      let sent = 0;
      for (let i = 0; i < n; i++) {
        if (!w.take('mta1', 'gmail.test')) break;
        sent++;
        w.record('mta1', 'gmail.test', i < bounces ? 'bounced' : 'delivered');
      }
      return sent;
    };
    // Day 1: 50, and no more; other vmtas and providers are uncapped.
    assert.equal(sendDay(80, 0), 50);
    assert.equal(w.remaining('mta1', 'gmail.test'), 0);
    assert.equal(w.take('mta2', 'gmail.test'), true);
    assert.equal(w.remaining('mta1', 'yahoo.test'), Number.POSITIVE_INFINITY);
    w.tick();
    // Day 2: 100.
    assert.equal(sendDay(150, 0), 100);
    w.tick();
    // Day 3: 200, but 10% bounced: the plan holds on day 3.
    assert.equal(sendDay(300, 20), 200);
    w.tick();
    assert.equal(w.remaining('mta1', 'gmail.test'), 200);
    assert.equal(tq('warmup-held').length, 1);
    assert.match(String(tq('warmup-held')[0]!.dsnDiag), /bounce rate 10\.0% above 5\.0%/);
    // A restart keeps the day and today's count.
    assert.equal(sendDay(30, 0), 30);
    w.save();
    const again = make();
    assert.equal(again.remaining('mta1', 'gmail.test'), 170);
    // Past the last day the plan is finished: no cap.
    for (let i = 0; i < 170; i++) {
      again.take('mta1', 'gmail.test');
      again.record('mta1', 'gmail.test', 'delivered');
    }
    again.tick();
    assert.equal(again.remaining('mta1', 'gmail.test'), Number.POSITIVE_INFINITY);
    assert.equal(tq('warmup-advanced').length, 3);
  });

  test('a DNSBL listing disables the IP for the configured domains within one check, delisting re-enables', async () => {
    const clock = new ManualClock();
    const events = new EventRecorder(writer);
    const sources = new SourceIpState(clock, events);
    const watch = new DnsblWatch({
      config,
      lookup: resolverLookup({ host: dns.host, port: dns.port }),
      sources,
      events,
      clock,
    });
    await watch.check();
    assert.equal(sources.isDisabled('mta1', 'gmail.test'), false);
    dns.a(`${reverseIp('127.0.0.11')}.bl.test`, ['127.0.0.2']);
    await watch.check();
    assert.equal(sources.isDisabled('mta1', 'gmail.test'), true);
    assert.equal(sources.isDisabled('mta1', 'yahoo.test'), false, 'only the configured domains');
    assert.equal(sources.isDisabled('mta2', 'gmail.test'), false, 'the other IP is not listed');
    // A list's error code is not a listing.
    dns.a(`${reverseIp('127.0.0.12')}.bl.test`, ['127.255.255.254']);
    await watch.check();
    assert.equal(sources.isDisabled('mta2', 'gmail.test'), false);
    dns.remove(`${reverseIp('127.0.0.11')}.bl.test`);
    await watch.check();
    assert.equal(sources.isDisabled('mta1', 'gmail.test'), false);
    assert.equal(tq('dnsbl-listed').length, 1);
    assert.equal(tq('dnsbl-delisted').length, 1);
    sources.close();
  });

  test('node-cron runs the DNSBL check on its schedule', async () => {
    const events = new EventRecorder(null);
    const sources = new SourceIpState(systemClock, events);
    const watch = new DnsblWatch({
      config,
      lookup: resolverLookup({ host: dns.host, port: dns.port }),
      sources,
      events,
      clock: systemClock,
    });
    dns.a(`${reverseIp('127.0.0.11')}.bl.test`, ['127.0.0.4']);
    const listed = new Promise<void>((resolve) => events.on((e) => e.kind === 'dnsbl-listed' && resolve()));
    watch.start(nodeCronStarter);
    try {
      // The zone's schedule is every second; one interval (plus DNS time) is enough.
      await Promise.race([
        listed,
        new Promise((_, reject) => setTimeout(() => reject(new Error('no check ran')), 5000)),
      ]);
      assert.equal(sources.isDisabled('mta1', 'gmail.test'), true);
    } finally {
      watch.stop();
      sources.close();
      dns.remove(`${reverseIp('127.0.0.11')}.bl.test`);
    }
  });
});
