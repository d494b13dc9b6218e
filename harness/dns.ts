/**
 * Authoritative DNS server for the test world (dns2, UDP and TCP on the same loopback port).
 * Tests set MX/A/AAAA/TXT records while it runs, can make a name SERVFAIL or answer slowly,
 * and read the query log to prove what a resolver did (and did not) ask, e.g. for caching.
 */
import { bindDnsSockets, type DnsHandler } from './dns-sockets.js';
import {
  type DnsRecordType,
  DnsZone,
  type MxRecord,
  normalizeName,
  TYPE_NAMES,
  validTtl,
} from './dns-zone.js';
import { assertLoopback } from './ports.js';

export { type DnsRecordType, type MxRecord, splitTxt } from './dns-zone.js';

export interface RecordOptions {
  /** TTL of the RRset in seconds (default: the server's `ttl`). */
  ttl?: number;
}

export interface DnsQuery {
  /** Queried name, lowercased, without trailing dot. */
  name: string;
  /** Type mnemonic (A, MX, …) or `TYPE<n>` for types this server has no name for. */
  type: string;
  time: number;
  transport: 'udp' | 'tcp';
}

export interface DnsServerOptions {
  host?: string;
  /** Fixed port; by default a free one is picked (same number for UDP and TCP). */
  port?: number;
  /** Default TTL in seconds for records set without one (default 60). */
  ttl?: number;
  /** SOA minimum, i.e. how long resolvers may cache NXDOMAIN/NODATA, in seconds (default 30). */
  negativeTtl?: number;
}

export interface TestDns {
  readonly host: string;
  readonly port: number;
  /** `host:port`, the form `dns-server` and `Resolver.setServers` take. */
  readonly address: string;
  /** Every query received, oldest first. */
  readonly queries: readonly DnsQuery[];
  mx(domain: string, records: MxRecord[], opts?: RecordOptions): void;
  /** RFC 7505 null MX: `MX 0 .` — the domain accepts no mail. */
  nullMx(domain: string, opts?: RecordOptions): void;
  a(name: string, ips: string[], opts?: RecordOptions): void;
  aaaa(name: string, ips: string[], opts?: RecordOptions): void;
  /**
   * One TXT record per element. A plain string longer than 255 bytes is split into 255-byte
   * character-strings of the same record (how DKIM keys are published); pass a string[] to choose
   * the split yourself.
   */
  txt(name: string, records: Array<string | string[]>, opts?: RecordOptions): void;
  /** Drops one RRset, or every record and fault (servfail, delay) of the name when `type` is omitted. */
  remove(name: string, type?: DnsRecordType): void;
  /** Answer every query for `name` with SERVFAIL until `servfail(name, false)` or `remove(name)`. */
  servfail(name: string, on?: boolean): void;
  /** Hold answers for `name` for `ms` milliseconds (0 clears). */
  delay(name: string, ms: number): void;
  /** Queries for `name` (and of `type`, if given). */
  queriesFor(name: string, type?: string): DnsQuery[];
  clearQueries(): void;
  close(): Promise<void>;
}

export async function startDnsServer(opts: DnsServerOptions = {}): Promise<TestDns> {
  const host = opts.host ?? '127.0.0.1';
  assertLoopback(host);
  const zone = new DnsZone(validTtl(opts.ttl ?? 60), validTtl(opts.negativeTtl ?? 30));
  const queries: DnsQuery[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const handle: DnsHandler = (request, send, transport) => {
    const question = request.questions[0];
    if (question) {
      queries.push({
        name: normalizeName(question.name),
        type: TYPE_NAMES.get(question.type) ?? `TYPE${question.type}`,
        time: Date.now(),
        transport,
      });
    }
    const { response, delayMs } = zone.answer(request);
    // A delayed reply may come due after close(); the socket is gone then, so swallow that.
    const reply = () => {
      if (closed) return;
      Promise.resolve()
        .then(() => send(response))
        .catch(() => undefined);
    };
    if (delayMs <= 0) return reply();
    const timer = setTimeout(() => {
      timers.delete(timer);
      reply();
    }, delayMs);
    timers.add(timer);
  };
  const sockets = await bindDnsSockets(host, opts.port, handle);
  const port = sockets.port;

  return {
    host,
    port,
    address: `${host}:${port}`,
    queries,
    mx: (domain, records, o) => zone.mx(domain, records, o?.ttl),
    nullMx: (domain, o) => zone.nullMx(domain, o?.ttl),
    a: (name, ips, o) => zone.address(name, ips, 4, o?.ttl),
    aaaa: (name, ips, o) => zone.address(name, ips, 6, o?.ttl),
    txt: (name, records, o) => zone.txt(name, records, o?.ttl),
    remove: (name, type) => zone.remove(name, type),
    servfail: (name, on = true) => zone.servfail(name, on),
    delay: (name, ms) => zone.delay(name, ms),
    queriesFor(name, type) {
      const key = normalizeName(name);
      return queries.filter((q) => q.name === key && (type === undefined || q.type === type.toUpperCase()));
    },
    clearQueries() {
      queries.length = 0;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await sockets.close();
    },
  };
}
