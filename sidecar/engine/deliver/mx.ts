/**
 * MX selection (RFC 5321 §5.1): MX hosts by preference, shuffled among equal preference, implicit MX
 * from the domain's own A/AAAA when it has no MX, null MX (RFC 7505) as a permanent failure, NXDOMAIN
 * or no mail host at all as permanent or temporary per bounce-upon-no-mx, resolver trouble as temporary.
 */
import { isIP } from 'node:net';
import type { DnsResolver, LookupResult, MxRecord } from '../../dns/resolver.js';

export interface MxHost {
  /** MX host name ('' for an IP literal next hop). */
  name: string;
  preference: number;
  /** Addresses to try, in order. */
  addresses: string[];
}

export type MxPlan =
  | { kind: 'hosts'; hosts: MxHost[] }
  /** Permanent: the domain does not accept mail (null MX; NXDOMAIN or no host with bounce-upon-no-mx). */
  | { kind: 'permanent'; status: string; diag: string }
  /** Temporary: resolver trouble or every MX host unresolvable; try again later. */
  | { kind: 'temporary'; status: string; diag: string };

export interface MxOptions {
  bounceUponNoMx: boolean;
  /** Address families usable from the chosen source IP (4, 6 or both). */
  families: ReadonlySet<4 | 6>;
  random?: () => number;
}

function shuffleEqualPreference(records: MxRecord[], random: () => number): MxRecord[] {
  const sorted = [...records].sort((a, b) => a.priority - b.priority);
  let start = 0;
  while (start < sorted.length) {
    let end = start + 1;
    while (end < sorted.length && sorted[end]?.priority === sorted[start]?.priority) end++;
    for (let i = end - 1; i > start; i--) {
      const j = start + Math.floor(random() * (i - start + 1));
      const tmp = sorted[i] as MxRecord;
      sorted[i] = sorted[j] as MxRecord;
      sorted[j] = tmp;
    }
    start = end;
  }
  return sorted;
}

async function hostAddresses(
  resolver: DnsResolver,
  name: string,
  families: ReadonlySet<4 | 6>,
): Promise<{ addresses: string[]; nameExists: boolean; error: string | null }> {
  const lookups: Promise<LookupResult<string>>[] = [];
  if (families.has(4)) lookups.push(resolver.addresses(name, 'A'));
  if (families.has(6)) lookups.push(resolver.addresses(name, 'AAAA'));
  const results = await Promise.all(lookups);
  const addresses: string[] = [];
  let error: string | null = null;
  let nameExists = false;
  for (const r of results) {
    if (r.kind === 'ok') {
      addresses.push(...r.records);
      nameExists = true;
    } else if (r.kind === 'nodata') nameExists = true;
    else if (r.kind === 'error') error = r.reason;
  }
  return { addresses, nameExists, error };
}

/** Where to deliver mail for `domain`. `[192.0.2.1]` (an address literal) skips DNS. */
export async function planMx(resolver: DnsResolver, domain: string, opts: MxOptions): Promise<MxPlan> {
  const random = opts.random ?? Math.random;
  const literal = /^\[(.+)\]$/.exec(domain)?.[1];
  if (literal && isIP(literal))
    return { kind: 'hosts', hosts: [{ name: '', preference: 0, addresses: [literal] }] };

  const mx = await resolver.mx(domain);
  if (mx.kind === 'error') {
    return { kind: 'temporary', status: '4.4.3', diag: `MX lookup for ${domain} failed: ${mx.reason}` };
  }
  if (mx.kind === 'ok' && mx.records.length === 1 && (mx.records[0]?.exchange ?? '') === '') {
    return { kind: 'permanent', status: '5.1.10', diag: `domain ${domain} accepts no mail (null MX)` };
  }
  // bounce-upon-no-mx decides whether a domain without any mail host bounces now or is retried.
  const noHost = (status: string, diag: string): MxPlan =>
    opts.bounceUponNoMx ? { kind: 'permanent', status, diag } : { kind: 'temporary', status: '4.4.4', diag };
  if (mx.kind === 'nxdomain') return noHost('5.1.2', `domain ${domain} does not exist (NXDOMAIN)`);

  if (mx.kind === 'nodata') {
    const implicit = await hostAddresses(resolver, domain, opts.families);
    if (implicit.addresses.length > 0) {
      return { kind: 'hosts', hosts: [{ name: domain, preference: 0, addresses: implicit.addresses }] };
    }
    if (implicit.error) {
      return {
        kind: 'temporary',
        status: '4.4.3',
        diag: `address lookup for ${domain} failed: ${implicit.error}`,
      };
    }
    return noHost('5.1.2', `domain ${domain} has no MX and no address record`);
  }

  // A null MX mixed with real ones is malformed; the real ones are used.
  const records = shuffleEqualPreference(
    mx.records.filter((r) => r.exchange !== ''),
    random,
  );
  const resolved = await Promise.all(records.map((r) => hostAddresses(resolver, r.exchange, opts.families)));
  const hosts: MxHost[] = [];
  let error: string | null = null;
  records.forEach((r, i) => {
    const a = resolved[i];
    if (!a) return;
    if (a.addresses.length > 0)
      hosts.push({ name: r.exchange, preference: r.priority, addresses: a.addresses });
    else if (a.error) error = a.error;
  });
  if (hosts.length > 0) return { kind: 'hosts', hosts };
  return {
    kind: 'temporary',
    status: '4.4.3',
    diag: error
      ? `cannot resolve any MX host of ${domain}: ${error}`
      : `no MX host of ${domain} has a usable address`,
  };
}
