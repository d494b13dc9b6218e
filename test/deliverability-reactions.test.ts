/**
 * Deliverability reactions on a simulated clock, recorded in a real accounting store: TSS04 → backoff
 * with the backoff rate, back to normal after backoff-to-normal-after; a blocklist reply disables one
 * source IP for one domain only; the ratio trigger fires at the threshold and not below, and does not
 * flap; AIMD cuts and recovers the rate.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AcctStore } from '../sidecar/acct/store.js';
import { AcctWriter } from '../sidecar/acct/writer.js';
import { loadConfig } from '../sidecar/config/load.js';
import type { FreightConfig } from '../sidecar/config/model.js';
import { ManualClock } from '../sidecar/deliverability/clock.js';
import { EventRecorder } from '../sidecar/deliverability/events.js';
import { RatioTrigger } from '../sidecar/deliverability/ratio-trigger.js';
import { DeliverabilityReactor } from '../sidecar/deliverability/reactor.js';

const CONF = `
host-name mta.example.net
<virtual-mta mta1>
  smtp-source-host 127.0.0.11 mta1.example.net
</virtual-mta>
<virtual-mta mta2>
  smtp-source-host 127.0.0.12 mta2.example.net
</virtual-mta>
<virtual-mta-pool marketing>
  virtual-mta mta1
  virtual-mta mta2
</virtual-mta-pool>
<smtp-pattern-list isp-replies>
  reply /TSS04/ mode=backoff
  reply /blocked using/ disable-source-ip,reenable-after=1h
  reply /^550 5\\.1\\.1/ bounce-rcpt
  reply /^4/ mode=backoff,threshold=5%/10m,min-samples=50
</smtp-pattern-list>
<domain yahoo.test>
  virtual-mta-pool marketing
  max-msg-rate 3600/h
  backoff-max-msg-rate 360/h
  backoff-to-normal-after 30m
  smtp-pattern-list isp-replies
</domain>
<domain other.test>
  virtual-mta-pool marketing
  smtp-pattern-list isp-replies
</domain>
`;

function rows(store: AcctStore, writer: AcctWriter) {
  writer.flush();
  return store.db.prepare("SELECT * FROM acct WHERE type = 'tq' ORDER BY id").all() as Array<
    Record<string, unknown>
  >;
}

describe('deliverability reactions', () => {
  let dir: string;
  let config: FreightConfig;
  let store: AcctStore;
  let writer: AcctWriter;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'freight-deliv-'));
    writeFileSync(join(dir, 'freight.conf'), CONF);
    config = loadConfig(join(dir, 'freight.conf'));
    store = AcctStore.open(join(dir, 'acct.db'));
    writer = new AcctWriter(store);
  });
  after(() => {
    writer.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const setup = () => {
    store.db.prepare('DELETE FROM acct').run();
    const clock = new ManualClock();
    const reactor = new DeliverabilityReactor({ config, clock, events: new EventRecorder(writer) });
    return { clock, reactor };
  };

  test('TSS04 reply → backoff at the backoff rate, back to normal after backoff-to-normal-after', () => {
    const { clock, reactor } = setup();
    const q = { domain: 'yahoo.test', vmta: 'mta1', sourceIp: '127.0.0.11' };
    const s = config.domainSettings('yahoo.test', 'mta1');
    assert.deepEqual(reactor.effective(q, s).maxMsgRate, { count: 3600, perMs: 3_600_000 });
    const reply = '421 4.7.0 [TSS04] Messages from 127.0.0.11 temporarily deferred';
    const out = reactor.onReply(q, reply, s);
    assert.equal(out.mode, 'backoff');
    const eff = reactor.effective(q, s);
    assert.equal(eff.mode, 'backoff');
    assert.deepEqual(eff.maxMsgRate, { count: 360, perMs: 3_600_000 });
    // The other vmta's queue to the same domain is a different queue and stays normal.
    assert.equal(reactor.effective({ domain: 'yahoo.test', vmta: 'mta2' }, s).mode, 'normal');
    clock.advance(29 * 60_000);
    assert.equal(reactor.modes.mode('yahoo.test', 'mta1'), 'backoff');
    clock.advance(60_001);
    assert.equal(reactor.modes.mode('yahoo.test', 'mta1'), 'normal');
    assert.deepEqual(reactor.effective(q, s).maxMsgRate, { count: 3600, perMs: 3_600_000 });
    const tq = rows(store, writer);
    assert.deepEqual(
      tq.map((r) => [r.dsnAction, r.queue, r.dsnDiag]),
      [
        ['mode-backoff', 'yahoo.test/mta1', reply],
        ['mode-normal', 'yahoo.test/mta1', 'backoff-to-normal-after 1800s elapsed'],
      ],
    );
    reactor.close();
  });

  test('a blocklist reply disables that source IP for that domain only, then re-enables it', () => {
    const { clock, reactor } = setup();
    const s = config.domainSettings('yahoo.test', 'mta1');
    const reply = '554 5.7.1 Service unavailable; Client host [127.0.0.11] blocked using dnsbl.test';
    const out = reactor.onReply({ domain: 'yahoo.test', vmta: 'mta1', sourceIp: '127.0.0.11' }, reply, s);
    assert.equal(out.sourceDisabled, true);
    assert.equal(reactor.isSourceDisabled('mta1', 'yahoo.test'), true);
    assert.equal(reactor.isSourceDisabled('mta2', 'yahoo.test'), false, 'other pool member keeps sending');
    assert.equal(reactor.isSourceDisabled('mta1', 'other.test'), false, 'it keeps sending to other domains');
    clock.advance(3_600_000);
    assert.equal(reactor.isSourceDisabled('mta1', 'yahoo.test'), false);
    const tq = rows(store, writer);
    assert.deepEqual(
      tq.map((r) => [r.dsnAction, r.queue, r.dlvSourceIp]),
      [
        ['source-ip-disabled', 'yahoo.test/mta1', '127.0.0.11'],
        ['source-ip-enabled', 'yahoo.test/mta1', '127.0.0.11'],
      ],
    );
    assert.equal(tq[0]!.dsnDiag, reply);
    reactor.close();
  });

  test('bounce-rcpt is handed back to the scheduler', () => {
    const { reactor } = setup();
    const s = config.domainSettings('yahoo.test', 'mta1');
    const out = reactor.onReply({ domain: 'yahoo.test', vmta: 'mta1' }, '550 5.1.1 no such user', s);
    assert.equal(out.bounceRcpt, true);
    assert.equal(out.mode, 'normal');
    reactor.close();
  });

  test('ratio trigger: fires at the threshold, not below it, and does not flap', () => {
    const { clock, reactor } = setup();
    const q = { domain: 'other.test', vmta: 'mta2', sourceIp: '127.0.0.12' };
    const s = config.domainSettings('other.test', 'mta2');
    const send = (n: number, fourxx: number) => {
      // Spread n replies over 10 s, `fourxx` of them 4xx, interleaved.
      for (let i = 0; i < n; i++) {
        clock.advance(10_000 / n);
        const bad = Math.floor(((i + 1) * fourxx) / n) > Math.floor((i * fourxx) / n);
        reactor.onReply(q, bad ? '451 4.3.0 try later' : '250 2.0.0 ok', s);
      }
    };
    // 4% of 100 replies: below 5%, nothing fires.
    send(100, 4);
    assert.equal(reactor.modes.mode('other.test', 'mta2'), 'normal');
    assert.equal(rows(store, writer).length, 0);
    // Up to 5% inside the window: fires once (backoff + rate cut).
    send(100, 6);
    assert.equal(reactor.modes.mode('other.test', 'mta2'), 'backoff');
    const fired = rows(store, writer).filter((r) => r.dsnAction === 'rate-decreased').length;
    assert.equal(fired, 1);
    // Hovering around the threshold does not fire again: it re-arms only below half of it.
    send(200, 10);
    send(200, 12);
    assert.equal(rows(store, writer).filter((r) => r.dsnAction === 'rate-decreased').length, 1);
    reactor.close();
  });

  test('min-samples: a high ratio on too few replies does not fire', () => {
    const t = new RatioTrigger({ ratio: 0.05, windowMs: 600_000, minSamples: 50 });
    let fired = 0;
    for (let i = 0; i < 49; i++) fired += t.record(true, 1000 + i) ? 1 : 0;
    assert.equal(fired, 0);
    assert.equal(t.record(true, 2000), true);
    // Samples older than the window drop out.
    assert.equal(t.state(2000 + 600_000 + 1000).samples, 0);
  });

  test('AIMD: the rate is cut multiplicatively and recovers step by step to max-msg-rate', () => {
    const clock = new ManualClock();
    const reactor = new DeliverabilityReactor({
      config,
      clock,
      events: new EventRecorder(null),
      aimd: { decrease: 0.5, increaseShare: 0.1, stepMs: 60_000, holdMs: 300_000 },
    });
    const q = { domain: 'yahoo.test', vmta: 'mta2' };
    const s = config.domainSettings('yahoo.test', 'mta2');
    for (let i = 0; i < 60; i++) {
      clock.advance(1000);
      reactor.onReply(q, i % 2 ? '451 4.3.0 later' : '250 ok', s);
    }
    reactor.modes.normal('yahoo.test', 'mta2', 'test: look at the rate cut alone');
    assert.deepEqual(reactor.effective(q, s).maxMsgRate, { count: 1800, perMs: 3_600_000 });
    // The cut happened at the 50th reply (min-samples), 10 s ago; recovery waits holdMs after it.
    clock.advance(239_000);
    assert.equal(reactor.effective(q, s).maxMsgRate?.count, 1800, 'held after the cut');
    clock.advance(51_000);
    assert.equal(reactor.effective(q, s).maxMsgRate?.count, 2160, 'first additive step');
    clock.advance(4 * 60_000);
    assert.equal(reactor.effective(q, s).maxMsgRate?.count, 3600, 'back at max-msg-rate');
    reactor.close();
  });
});
