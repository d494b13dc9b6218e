/**
 * Authoritative DNS server for the test world (dns2, UDP and TCP on the same loopback port).
 * Tests set MX/A/AAAA/TXT records while it runs, can make a name SERVFAIL or answer slowly,
 * and read the query log to prove what a resolver did (and did not) ask, e.g. for caching.
 */
import type net from 'node:net';
import { isIP } from 'node:net';
import type DNS from 'dns2';
import { Packet, TCPServer, UDPServer } from 'dns2';
import { FreightError } from '../sidecar/common/errors.js';
import { assertLoopback } from './ports.js';

type DnsPacket = InstanceType<typeof Packet>;
type DnsResource = DNS.Packet.Resource;

// dns2 has these at runtime but not in its type declarations.
const RCODE = { FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3 } as const;

export type DnsRecordType = 'A' | 'AAAA' | 'MX' | 'TXT';

export interface MxRecord {
  exchange: string;
  priority: number;
}

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

interface RRset {
  ttl: number;
  records: Array<Partial<DnsResource>>;
}

interface NameEntry {
  rrsets: Map<number, RRset>;
  servfail: boolean;
  delayMs: number;
}

const TYPE_CODES: Record<DnsRecordType, number> = {
  A: Packet.TYPE.A,
  AAAA: Packet.TYPE.AAAA,
  MX: Packet.TYPE.MX,
  TXT: Packet.TYPE.TXT,
};

const TYPE_NAMES = new Map<number, string>(Object.entries(Packet.TYPE).map(([k, v]) => [v, k]));

function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

function validTtl(ttl: number): number {
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff) {
    throw new FreightError('WORLD_DNS_BAD_RECORD', `TTL must be a non-negative integer, got ${ttl}`);
  }
  return ttl;
}

/** Splits text into ≤255-byte character-strings without cutting a UTF-8 sequence. */
export function splitTxt(text: string): string[] {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length === 0) return [''];
  const out: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + 255, bytes.length);
    // Back off continuation bytes (10xxxxxx) so each chunk is valid UTF-8 on its own.
    while (end < bytes.length && end > start && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
    out.push(bytes.subarray(start, end).toString('utf8'));
    start = end;
  }
  return out;
}

function listenTcp(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ port, host, exclusive: true }, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

function bindUdp(socket: InstanceType<typeof UDPServer>, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.bind({ port, address: host, exclusive: true }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

function closeTcp(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function closeUdp(socket: InstanceType<typeof UDPServer>): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // never bound
    }
  });
}

export async function startDnsServer(opts: DnsServerOptions = {}): Promise<TestDns> {
  const host = opts.host ?? '127.0.0.1';
  assertLoopback(host);
  const defaultTtl = validTtl(opts.ttl ?? 60);
  const negativeTtl = validTtl(opts.negativeTtl ?? 30);

  const names = new Map<string, NameEntry>();
  const queries: DnsQuery[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const tcpSockets = new Set<net.Socket>();
  let closed = false;

  const entry = (name: string): NameEntry => {
    const key = normalizeName(name);
    let e = names.get(key);
    if (!e) {
      e = { rrsets: new Map(), servfail: false, delayMs: 0 };
      names.set(key, e);
    }
    return e;
  };

  const setRRset = (name: string, type: number, records: Array<Partial<DnsResource>>, ttl?: number) => {
    const e = entry(name);
    if (records.length === 0) e.rrsets.delete(type);
    else e.rrsets.set(type, { ttl: validTtl(ttl ?? defaultTtl), records });
  };

  // A name with no records of its own still exists if something below it does (empty non-terminal),
  // so it answers NODATA rather than NXDOMAIN, as a real authoritative server would.
  const nameExists = (qname: string): boolean => {
    const own = names.get(qname);
    if (own && own.rrsets.size > 0) return true;
    const suffix = `.${qname}`;
    for (const [n, e] of names) if (e.rrsets.size > 0 && n.endsWith(suffix)) return true;
    return false;
  };

  const soaFor = (qname: string): DnsResource => {
    const labels = qname.split('.');
    const zone = labels.length > 2 ? labels.slice(-2).join('.') : qname;
    return Packet.createResourceFromQuestion(
      { name: zone, type: Packet.TYPE.SOA, class: Packet.CLASS.IN } as DNS.Packet.Question,
      {
        name: zone,
        type: Packet.TYPE.SOA,
        class: Packet.CLASS.IN,
        ttl: negativeTtl,
        primary: `ns.${zone}`,
        admin: `hostmaster.${zone}`,
        serial: 1,
        refresh: 3600,
        retry: 600,
        expiration: 86400,
        minimum: negativeTtl,
      },
    );
  };

  const answer = (request: DnsPacket): { response: DnsPacket; delayMs: number } => {
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    const question = request.questions[0];
    if (!question || request.questions.length !== 1) {
      response.header.rcode = RCODE.FORMERR;
      return { response, delayMs: 0 };
    }
    const qname = normalizeName(question.name);
    const own = names.get(qname);
    const delayMs = own?.delayMs ?? 0;
    if (own?.servfail) {
      response.header.aa = 0;
      response.header.rcode = RCODE.SERVFAIL;
      return { response, delayMs };
    }
    if (!nameExists(qname)) {
      response.header.rcode = RCODE.NXDOMAIN;
      response.authorities.push(soaFor(qname));
      return { response, delayMs };
    }
    const sets =
      question.type === Packet.TYPE.ANY
        ? [...(own?.rrsets.entries() ?? [])]
        : own?.rrsets.has(question.type)
          ? [[question.type, own.rrsets.get(question.type)!] as const]
          : [];
    for (const [type, rrset] of sets) {
      for (const record of rrset.records) {
        response.answers.push(
          Packet.createResourceFromQuestion(question, {
            ...record,
            name: question.name,
            type,
            class: Packet.CLASS.IN,
            ttl: rrset.ttl,
          }),
        );
      }
    }
    if (response.answers.length === 0) response.authorities.push(soaFor(qname));
    return { response, delayMs };
  };

  const handle = (
    request: DnsPacket,
    send: (response: DnsPacket) => Promise<Buffer> | unknown,
    transport: 'udp' | 'tcp',
  ) => {
    const question = request.questions[0];
    if (question) {
      queries.push({
        name: normalizeName(question.name),
        type: TYPE_NAMES.get(question.type) ?? `TYPE${question.type}`,
        time: Date.now(),
        transport,
      });
    }
    const { response, delayMs } = answer(request);
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

  const makeUdp = () => {
    const socket = new UDPServer({ type: 'udp4' });
    socket.on('request', (req: DnsPacket, send: (r: DnsPacket) => Promise<Buffer>) =>
      handle(req, send, 'udp'),
    );
    // Malformed queries are the client's problem; the server keeps running.
    socket.on('requestError', () => undefined);
    return socket;
  };
  let udp = makeUdp();
  const tcp = new TCPServer();
  tcp.on('request', (req: DnsPacket, send: (r: DnsPacket) => Promise<Buffer>) => handle(req, send, 'tcp'));
  tcp.on('connection', (socket: net.Socket) => {
    tcpSockets.add(socket);
    socket.on('close', () => tcpSockets.delete(socket));
  });
  tcp.on('requestError', () => undefined);

  // UDP and TCP must share one port number; with an OS-picked port the UDP one may be taken.
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      port = await listenTcp(tcp, opts.port ?? 0, host);
      await bindUdp(udp, port, host);
      break;
    } catch (err) {
      await closeTcp(tcp);
      await closeUdp(udp);
      udp = makeUdp();
      if (opts.port !== undefined || attempt >= 20) {
        throw new FreightError(
          'WORLD_DNS_LISTEN',
          `cannot bind DNS server to ${host}:${opts.port ?? port}`,
          { host, port: opts.port ?? port },
          {
            cause: err,
          },
        );
      }
    }
  }
  // Past startup a socket error (e.g. ICMP unreachable for a gone client) must not crash the test.
  udp.on('error', () => undefined);
  tcp.on('error', () => undefined);

  const checkIps = (ips: string[], family: 4 | 6) => {
    for (const ip of ips) {
      if (isIP(ip) !== family) {
        throw new FreightError('WORLD_DNS_BAD_RECORD', `not an IPv${family} address: ${ip}`, { ip });
      }
    }
  };

  return {
    host,
    port,
    address: `${host}:${port}`,
    queries,
    mx(domain, records, o) {
      for (const r of records) {
        if (!Number.isInteger(r.priority) || r.priority < 0 || r.priority > 0xffff) {
          throw new FreightError('WORLD_DNS_BAD_RECORD', `MX priority must be 0..65535, got ${r.priority}`);
        }
      }
      setRRset(
        domain,
        Packet.TYPE.MX,
        records.map((r) => ({ exchange: normalizeName(r.exchange), priority: r.priority })),
        o?.ttl,
      );
    },
    nullMx(domain, o) {
      setRRset(domain, Packet.TYPE.MX, [{ exchange: '', priority: 0 }], o?.ttl);
    },
    a(name, ips, o) {
      checkIps(ips, 4);
      setRRset(
        name,
        Packet.TYPE.A,
        ips.map((address) => ({ address })),
        o?.ttl,
      );
    },
    aaaa(name, ips, o) {
      checkIps(ips, 6);
      setRRset(
        name,
        Packet.TYPE.AAAA,
        ips.map((address) => ({ address })),
        o?.ttl,
      );
    },
    txt(name, records, o) {
      const data = records.map((r) => (Array.isArray(r) ? r : splitTxt(r)));
      for (const strings of data) {
        for (const s of strings) {
          if (Buffer.byteLength(s, 'utf8') > 255) {
            throw new FreightError('WORLD_DNS_BAD_RECORD', 'a TXT character-string is at most 255 bytes', {
              length: Buffer.byteLength(s, 'utf8'),
            });
          }
        }
      }
      setRRset(
        name,
        Packet.TYPE.TXT,
        data.map((strings) => ({ data: strings })),
        o?.ttl,
      );
    },
    remove(name, type) {
      const key = normalizeName(name);
      if (type === undefined) names.delete(key);
      else names.get(key)?.rrsets.delete(TYPE_CODES[type]);
    },
    servfail(name, on = true) {
      entry(name).servfail = on;
    },
    delay(name, ms) {
      entry(name).delayMs = Math.max(0, ms);
    },
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
      for (const s of tcpSockets) s.destroy();
      await Promise.all([closeTcp(tcp), closeUdp(udp)]);
    },
  };
}
