/**
 * DNSBL watch: each source IP is looked up as `<reversed-ip>.<zone>` (A) against the engine's resolver
 * (`dns-server`) on each zone's cron schedule. A listed IP's virtual MTAs are disabled for the zone's
 * `disable-for` domains until a later check finds it delisted. Answers in 127.255.255.0/24 are the
 * lists' own error codes (e.g. Spamhaus refusing a public resolver), not listings; a failed lookup
 * changes nothing. Every listing and delisting is recorded.
 */
import { isIP } from 'node:net';
import PQueue from 'p-queue';
import { createLogger } from '../common/log.js';
import type { FreightConfig, HostPort } from '../config/model.js';
import { createDnsResolver } from '../dns/resolver.js';
import type { Clock, CronHandle, CronStarter } from './clock.js';
import { type DnsblZone, dnsblZones } from './config.js';
import type { EventRecorder } from './events.js';
import type { SourceIpState } from './source-ip-state.js';

const log = createLogger('deliverability/dnsbl');

/**
 * Lookups in flight at once per check: a host with hundreds of source IPs must not burst that many
 * queries at the resolver (and the list's rate limit) in one moment.
 */
export const DNSBL_LOOKUP_CONCURRENCY = 8;

/** A-record lookup: the addresses, [] when the name does not exist, or null when the lookup failed. */
export type DnsblLookup = (name: string) => Promise<string[] | null>;

/** Lookup through the engine's resolver, uncached: each check must see the list as it is now. */
export function resolverLookup(server: HostPort | null): DnsblLookup {
  const resolver = createDnsResolver({ server, maxTtlMs: 0, maxNegativeTtlMs: 0, errorTtlMs: 0 });
  return async (name) => {
    const r = await resolver.addresses(name, 'A');
    if (r.kind === 'ok') return r.records;
    if (r.kind === 'nxdomain' || r.kind === 'nodata') return [];
    return null;
  };
}

/** `192.0.2.10` → `10.2.0.192`; IPv6 as reversed nibbles. */
export function reverseIp(ip: string): string {
  if (isIP(ip) === 4) return ip.split('.').reverse().join('.');
  if (isIP(ip) === 6) {
    const [head = '', tail = ''] = ip.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
    return groups
      .map((g) => g.padStart(4, '0'))
      .join('')
      .split('')
      .reverse()
      .join('.');
  }
  throw new Error(`not an IP address: ${ip}`);
}

export function isListing(answers: string[]): boolean {
  return answers.some((a) => a.startsWith('127.') && !a.startsWith('127.255.255.'));
}

interface Target {
  ip: string;
  vmtas: string[];
}

export class DnsblWatch {
  private zones: DnsblZone[];
  private targets: Map<string, Target[]>;
  private readonly lookup: DnsblLookup;
  private readonly sources: SourceIpState;
  private readonly events: EventRecorder;
  private readonly clock: Clock;
  /** `zone ip` → the answer that listed it. */
  private readonly listed = new Map<string, string>();
  private crons: CronHandle[] = [];

  constructor(opts: {
    config: FreightConfig;
    lookup: DnsblLookup;
    sources: SourceIpState;
    events: EventRecorder;
    clock: Clock;
  }) {
    this.lookup = opts.lookup;
    this.sources = opts.sources;
    this.events = opts.events;
    this.clock = opts.clock;
    this.zones = dnsblZones(opts.config);
    this.targets = targetsOf(opts.config, this.zones);
  }

  setConfig(config: FreightConfig): void {
    this.zones = dnsblZones(config);
    this.targets = targetsOf(config, this.zones);
  }

  /** Listings currently in force, `zone` → IPs. */
  listings(): { zone: string; ip: string; answer: string }[] {
    return [...this.listed].map(([k, answer]) => {
      const [zone = '', ip = ''] = k.split(' ');
      return { zone, ip, answer };
    });
  }

  /** Check every IP against one zone (or all zones) now. */
  async check(zoneName?: string): Promise<void> {
    for (const zone of this.zones) {
      if (zoneName !== undefined && zone.zone !== zoneName) continue;
      const queue = new PQueue({ concurrency: DNSBL_LOOKUP_CONCURRENCY });
      await queue.addAll((this.targets.get(zone.zone) ?? []).map((t) => () => this.checkOne(zone, t)));
    }
  }

  start(startCron: CronStarter): void {
    this.stop();
    for (const zone of this.zones)
      this.crons.push(startCron(zone.checkSchedule, () => this.check(zone.zone)));
  }

  stop(): void {
    for (const c of this.crons) c.stop();
    this.crons = [];
  }

  private async checkOne(zone: DnsblZone, t: Target): Promise<void> {
    const name = `${reverseIp(t.ip)}.${zone.zone}`;
    const answers = await this.lookup(name);
    if (answers === null) {
      log.warn('DNSBL lookup failed; state unchanged', { zone: zone.zone, ip: t.ip });
      return;
    }
    const k = `${zone.zone} ${t.ip}`;
    const cause = `dnsbl:${zone.zone}`;
    const was = this.listed.has(k);
    const now = this.clock.now();
    if (isListing(answers)) {
      const answer = answers.join(',');
      if (was) return;
      this.listed.set(k, answer);
      const reason = `${t.ip} listed in ${zone.zone} (${answer})`;
      for (const vmta of t.vmtas) {
        this.events.record({
          kind: 'dnsbl-listed',
          at: now,
          domain: '*',
          vmta,
          sourceIp: t.ip,
          cause: reason,
        });
        for (const domain of zone.disableFor) {
          this.sources.disable({ vmta, sourceIp: t.ip, domain, cause, reason, reenableAfter: null });
        }
      }
    } else if (was) {
      this.listed.delete(k);
      const reason = `${t.ip} no longer listed in ${zone.zone}`;
      for (const vmta of t.vmtas) {
        this.events.record({
          kind: 'dnsbl-delisted',
          at: now,
          domain: '*',
          vmta,
          sourceIp: t.ip,
          cause: reason,
        });
        for (const domain of zone.disableFor) this.sources.enable(vmta, domain, cause, reason);
      }
    }
  }
}

function targetsOf(config: FreightConfig, zones: DnsblZone[]): Map<string, Target[]> {
  const out = new Map<string, Target[]>();
  for (const zone of zones) {
    const byIp = new Map<string, string[]>();
    for (const v of config.virtualMtas.values()) {
      if (zone.vmtas.length > 0 && !zone.vmtas.includes(v.name)) continue;
      if (isIP(v.sourceIp) === 0) continue;
      byIp.set(v.sourceIp, [...(byIp.get(v.sourceIp) ?? []), v.name]);
    }
    out.set(
      zone.zone,
      [...byIp].map(([ip, vmtas]) => ({ ip, vmtas })),
    );
  }
  return out;
}
