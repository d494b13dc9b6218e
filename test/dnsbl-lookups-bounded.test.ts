/**
 * A DNSBL check of many source IPs keeps at most DNSBL_LOOKUP_CONCURRENCY lookups in flight, and still
 * looks up every IP and acts on every listing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../sidecar/config/load.js';
import { ManualClock } from '../sidecar/deliverability/clock.js';
import { DNSBL_LOOKUP_CONCURRENCY, DnsblWatch, reverseIp } from '../sidecar/deliverability/dnsbl.js';
import { EventRecorder } from '../sidecar/deliverability/events.js';
import { SourceIpState } from '../sidecar/deliverability/source-ip-state.js';

const IPS = Array.from({ length: 40 }, (_, i) => `127.0.1.${i + 1}`);

const CONF = `host-name mta.example.net
${IPS.map((ip, i) => `<virtual-mta mta${i}>\n  smtp-source-host ${ip} mta${i}.example.net\n</virtual-mta>`).join('\n')}
<dnsbl bl.test>
  check-schedule "0 * * * *"
  disable-for gmail.test
</dnsbl>
`;

test('a DNSBL check of 40 source IPs keeps the lookups in flight bounded and checks every IP', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'freight-dnsbl-bound-'));
  try {
    writeFileSync(join(dir, 'freight.conf'), CONF);
    const config = loadConfig(join(dir, 'freight.conf'));
    const clock = new ManualClock();
    const events = new EventRecorder(null);
    const sources = new SourceIpState(clock, events);
    const listed = `${reverseIp(IPS[7] ?? '')}.bl.test`;
    const looked: string[] = [];
    let inFlight = 0;
    let peak = 0;
    const watch = new DnsblWatch({
      config,
      lookup: async (name) => {
        looked.push(name);
        peak = Math.max(peak, ++inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        return name === listed ? ['127.0.0.2'] : [];
      },
      sources,
      events,
      clock,
    });
    await watch.check();
    assert.equal(looked.length, IPS.length, 'every source IP is looked up');
    assert.ok(peak <= DNSBL_LOOKUP_CONCURRENCY, `at most ${DNSBL_LOOKUP_CONCURRENCY} in flight, saw ${peak}`);
    assert.equal(sources.isDisabled('mta7', 'gmail.test'), true, 'the listed IP is disabled');
    assert.equal(sources.isDisabled('mta8', 'gmail.test'), false);
    sources.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
