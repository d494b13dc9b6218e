/**
 * The engine's own DNS client (dns2) against `dns-server`: UDP with TCP fallback on truncation or
 * UDP failure, a timeout per query, a positive cache honouring record TTLs and a negative cache
 * (NXDOMAIN / NODATA) honouring the SOA minimum. Concurrent lookups of one name share one query.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import DNS from 'dns2';
import { errorMessage, FreightError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import type { HostPort } from '../config/model.js';

const log = createLogger('engine/dns');

export type LookupType = 'MX' | 'A' | 'AAAA';

export interface MxRecord {
  exchange: string;
  priority: number;
}

/** Outcome of one lookup: records, the name does not exist, it exists without this type, or a failure. */
export type LookupResult<T> =
  | { kind: 'ok'; records: T[] }
  | { kind: 'nxdomain' }
  | { kind: 'nodata' }
  | { kind: 'error'; reason: string };

export interface DnsResolverOptions {
  /** `dns-server`; null = the first nameserver of /etc/resolv.conf. */
  server: HostPort | null;
  /** Per-query timeout (each of UDP and TCP), default 3 s. */
  timeoutMs?: number;
  /** UDP tries before falling back to TCP, default 2. */
  udpTries?: number;
  /** Caps on cache lifetimes, in ms. */
  maxTtlMs?: number;
  maxNegativeTtlMs?: number;
  /** How long a SERVFAIL / timeout is remembered, so a dead resolver is not hammered. */
  errorTtlMs?: number;
  now?: () => number;
}

export interface DnsResolver {
  mx(name: string): Promise<LookupResult<MxRecord>>;
  addresses(name: string, type: 'A' | 'AAAA'): Promise<LookupResult<string>>;
  /** Entries currently cached (tests, `freight show status`). */
  cacheSize(): number;
  clearCache(): void;
}

type Packet = InstanceType<typeof DNS.Packet>;

interface CacheEntry {
  expiresAt: number;
  result: LookupResult<MxRecord> | LookupResult<string>;
}

const RCODE_NXDOMAIN = 3;

function systemNameServer(): HostPort {
  try {
    const text = readFileSync('/etc/resolv.conf', 'utf8');
    for (const line of text.split('\n')) {
      const m = /^\s*nameserver\s+(\S+)/.exec(line);
      if (m?.[1] && isIP(m[1])) return { host: m[1], port: 53 };
    }
  } catch (err) {
    log.warn('cannot read /etc/resolv.conf', { error: errorMessage(err) });
  }
  throw new FreightError(
    'ENGINE_DNS_NO_SERVER',
    'no dns-server configured and no nameserver in /etc/resolv.conf',
  );
}

function normalize(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new FreightError('ENGINE_DNS_TIMEOUT', `${what} timed out after ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function createDnsResolver(opts: DnsResolverOptions): DnsResolver {
  const server = opts.server ?? systemNameServer();
  const timeoutMs = opts.timeoutMs ?? 3000;
  const udpTries = Math.max(1, opts.udpTries ?? 2);
  const maxTtlMs = opts.maxTtlMs ?? 3_600_000;
  const maxNegativeTtlMs = opts.maxNegativeTtlMs ?? 300_000;
  const errorTtlMs = opts.errorTtlMs ?? 5_000;
  const now = opts.now ?? Date.now;
  // dns2's UDP client already retries over TCP when the TC bit is set.
  const udp = DNS.UDPClient({ dns: server.host, port: server.port, timeout: timeoutMs, retryOverTCP: true });
  const tcp = DNS.TCPClient({ dns: server.host, port: server.port });
  const cache = new Map<string, CacheEntry>();
  const inflight = new Map<string, Promise<CacheEntry['result']>>();

  async function query(name: string, type: LookupType): Promise<Packet> {
    let lastErr: unknown;
    for (let i = 0; i < udpTries; i++) {
      try {
        return await withTimeout(udp(name, type), timeoutMs + 100, `UDP ${type} ${name}`);
      } catch (err) {
        lastErr = err;
      }
    }
    try {
      return await withTimeout(tcp(name, type), timeoutMs, `TCP ${type} ${name}`);
    } catch (err) {
      throw new FreightError(
        'ENGINE_DNS_FAILED',
        `${type} ${name}: ${errorMessage(err)}`,
        { name, type },
        {
          cause: lastErr ?? err,
        },
      );
    }
  }

  function negativeTtl(packet: Packet): number {
    const soa = packet.authorities.find((r) => typeof r.minimum === 'number');
    const secs = soa ? Math.min(soa.ttl, soa.minimum ?? soa.ttl) : 60;
    return Math.min(secs * 1000, maxNegativeTtlMs);
  }

  async function lookup(name: string, type: LookupType): Promise<CacheEntry['result']> {
    const key = `${type} ${name}`;
    const t = now();
    const hit = cache.get(key);
    if (hit) {
      if (hit.expiresAt > t) return hit.result;
      cache.delete(key);
    }
    const pending = inflight.get(key);
    if (pending) return pending;
    const p = (async (): Promise<CacheEntry['result']> => {
      let packet: Packet;
      try {
        packet = await query(name, type);
      } catch (err) {
        const result = { kind: 'error' as const, reason: errorMessage(err) };
        cache.set(key, { expiresAt: now() + errorTtlMs, result });
        return result;
      }
      const rcode = packet.header.rcode;
      if (rcode === RCODE_NXDOMAIN) {
        const result = { kind: 'nxdomain' as const };
        cache.set(key, { expiresAt: now() + negativeTtl(packet), result });
        return result;
      }
      if (rcode !== 0) {
        const result = { kind: 'error' as const, reason: `rcode ${rcode}` };
        cache.set(key, { expiresAt: now() + errorTtlMs, result });
        return result;
      }
      const typeCode = DNS.Packet.TYPE[type];
      const answers = packet.answers.filter((r) => r.type === typeCode);
      if (answers.length === 0) {
        const result = { kind: 'nodata' as const };
        cache.set(key, { expiresAt: now() + negativeTtl(packet), result });
        return result;
      }
      const ttlMs = Math.min(Math.min(...answers.map((r) => r.ttl)) * 1000, maxTtlMs);
      const result =
        type === 'MX'
          ? {
              kind: 'ok' as const,
              records: answers.map((r) => ({
                exchange: normalize(r.exchange ?? ''),
                priority: r.priority ?? 0,
              })),
            }
          : {
              kind: 'ok' as const,
              records: answers.map((r) => r.address ?? '').filter((a) => isIP(a) !== 0),
            };
      if (ttlMs > 0) cache.set(key, { expiresAt: now() + ttlMs, result });
      return result;
    })().finally(() => inflight.delete(key));
    inflight.set(key, p);
    return p;
  }

  return {
    mx: (name) => lookup(normalize(name), 'MX') as Promise<LookupResult<MxRecord>>,
    addresses: (name, type) => lookup(normalize(name), type) as Promise<LookupResult<string>>,
    cacheSize: () => cache.size,
    clearCache: () => cache.clear(),
  };
}
