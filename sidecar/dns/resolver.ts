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
  throw new FreightError('DNS_NO_SERVER', 'no dns-server configured and no nameserver in /etc/resolv.conf');
}

function normalize(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FreightError('DNS_TIMEOUT', `${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

type Result = CacheEntry['result'];

/** The records of a successful answer (MX hosts, or the addresses that are IPs). */
function answerResult(type: LookupType, answers: Packet['answers']): Result {
  if (type === 'MX')
    return {
      kind: 'ok',
      records: answers.map((r) => ({ exchange: normalize(r.exchange ?? ''), priority: r.priority ?? 0 })),
    };
  return { kind: 'ok', records: answers.map((r) => r.address ?? '').filter((a) => isIP(a) !== 0) };
}

class Dns2Resolver implements DnsResolver {
  private readonly server: HostPort;
  private readonly timeoutMs: number;
  private readonly udpTries: number;
  private readonly maxTtlMs: number;
  private readonly maxNegativeTtlMs: number;
  private readonly errorTtlMs: number;
  private readonly now: () => number;
  private readonly udp: ReturnType<typeof DNS.UDPClient>;
  private readonly tcp: ReturnType<typeof DNS.TCPClient>;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<Result>>();

  constructor(opts: DnsResolverOptions) {
    this.server = opts.server ?? systemNameServer();
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.udpTries = Math.max(1, opts.udpTries ?? 2);
    this.maxTtlMs = opts.maxTtlMs ?? 3_600_000;
    this.maxNegativeTtlMs = opts.maxNegativeTtlMs ?? 300_000;
    this.errorTtlMs = opts.errorTtlMs ?? 5_000;
    this.now = opts.now ?? Date.now;
    const { host, port } = this.server;
    // dns2's UDP client already retries over TCP when the TC bit is set.
    this.udp = DNS.UDPClient({ dns: host, port, timeout: this.timeoutMs, retryOverTCP: true });
    this.tcp = DNS.TCPClient({ dns: host, port });
  }

  mx = (name: string) => this.lookup(normalize(name), 'MX') as Promise<LookupResult<MxRecord>>;
  addresses = (name: string, type: 'A' | 'AAAA') =>
    this.lookup(normalize(name), type) as Promise<LookupResult<string>>;
  cacheSize = () => this.cache.size;
  clearCache = () => this.cache.clear();

  private async query(name: string, type: LookupType): Promise<Packet> {
    let lastErr: unknown;
    for (let i = 0; i < this.udpTries; i++) {
      try {
        return await withTimeout(this.udp(name, type), this.timeoutMs + 100, `UDP ${type} ${name}`);
      } catch (err) {
        lastErr = err;
      }
    }
    try {
      return await withTimeout(this.tcp(name, type), this.timeoutMs, `TCP ${type} ${name}`);
    } catch (err) {
      throw new FreightError(
        'DNS_FAILED',
        `${type} ${name}: ${errorMessage(err)}`,
        { name, type },
        {
          cause: lastErr ?? err,
        },
      );
    }
  }

  private negativeTtl(packet: Packet): number {
    const soa = packet.authorities.find((r) => typeof r.minimum === 'number');
    const secs = soa ? Math.min(soa.ttl, soa.minimum ?? soa.ttl) : 60;
    return Math.min(secs * 1000, this.maxNegativeTtlMs);
  }

  private lookup(name: string, type: LookupType): Promise<Result> {
    const key = `${type} ${name}`;
    const hit = this.cache.get(key);
    if (hit) {
      if (hit.expiresAt > this.now()) return Promise.resolve(hit.result);
      this.cache.delete(key);
    }
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const p = this.resolve(key, name, type).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  /** One query, its result cached for its TTL (negative answers and failures for their own times). */
  private async resolve(key: string, name: string, type: LookupType): Promise<Result> {
    const remember = (result: Result, ttlMs: number): Result => {
      if (ttlMs > 0) this.cache.set(key, { expiresAt: this.now() + ttlMs, result });
      return result;
    };
    let packet: Packet;
    try {
      packet = await this.query(name, type);
    } catch (err) {
      return remember({ kind: 'error', reason: errorMessage(err) }, this.errorTtlMs);
    }
    const rcode = packet.header.rcode;
    if (rcode === RCODE_NXDOMAIN) return remember({ kind: 'nxdomain' }, this.negativeTtl(packet));
    if (rcode !== 0) return remember({ kind: 'error', reason: `rcode ${rcode}` }, this.errorTtlMs);
    const typeCode = DNS.Packet.TYPE[type];
    const answers = packet.answers.filter((r) => r.type === typeCode);
    if (answers.length === 0) return remember({ kind: 'nodata' }, this.negativeTtl(packet));
    const ttlMs = Math.min(Math.min(...answers.map((r) => r.ttl)) * 1000, this.maxTtlMs);
    return remember(answerResult(type, answers), ttlMs);
  }
}

export function createDnsResolver(opts: DnsResolverOptions): DnsResolver {
  return new Dns2Resolver(opts);
}
