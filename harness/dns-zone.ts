/**
 * The test DNS server's records and how it answers from them, as an authoritative server would:
 * NXDOMAIN with an SOA for a name that does not exist, NODATA for one that exists only as a parent of
 * others, SERVFAIL for a name a test has broken, and each RRset with its own TTL.
 */
import { isIP } from 'node:net';
import type DNS from 'dns2';
import { Packet } from 'dns2';
import { WorldError } from './errors.js';

export type DnsRecordType = 'A' | 'AAAA' | 'MX' | 'TXT';

export interface MxRecord {
  exchange: string;
  priority: number;
}

export type DnsPacket = InstanceType<typeof Packet>;
type DnsResource = DNS.Packet.Resource;

// dns2 has these at runtime but not in its type declarations.
const RCODE = { FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3 } as const;

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

export const TYPE_NAMES = new Map<number, string>(Object.entries(Packet.TYPE).map(([k, v]) => [v, k]));

export function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

export function validTtl(ttl: number): number {
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff) {
    throw new WorldError('WORLD_DNS_BAD_RECORD', `TTL must be a non-negative integer, got ${ttl}`);
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

function checkIps(ips: string[], family: 4 | 6): void {
  for (const ip of ips) {
    if (isIP(ip) !== family) {
      throw new WorldError('WORLD_DNS_BAD_RECORD', `not an IPv${family} address: ${ip}`, { ip });
    }
  }
}

export class DnsZone {
  private readonly names = new Map<string, NameEntry>();

  constructor(
    private readonly defaultTtl: number,
    private readonly negativeTtl: number,
  ) {}

  mx(domain: string, records: MxRecord[], ttl?: number): void {
    for (const r of records) {
      if (!Number.isInteger(r.priority) || r.priority < 0 || r.priority > 0xffff) {
        throw new WorldError('WORLD_DNS_BAD_RECORD', `MX priority must be 0..65535, got ${r.priority}`);
      }
    }
    this.setRRset(
      domain,
      Packet.TYPE.MX,
      records.map((r) => ({ exchange: normalizeName(r.exchange), priority: r.priority })),
      ttl,
    );
  }

  nullMx(domain: string, ttl?: number): void {
    this.setRRset(domain, Packet.TYPE.MX, [{ exchange: '', priority: 0 }], ttl);
  }

  address(name: string, ips: string[], family: 4 | 6, ttl?: number): void {
    checkIps(ips, family);
    const type = family === 4 ? Packet.TYPE.A : Packet.TYPE.AAAA;
    this.setRRset(
      name,
      type,
      ips.map((address) => ({ address })),
      ttl,
    );
  }

  txt(name: string, records: Array<string | string[]>, ttl?: number): void {
    const data = records.map((r) => (Array.isArray(r) ? r : splitTxt(r)));
    for (const strings of data) {
      for (const s of strings) {
        if (Buffer.byteLength(s, 'utf8') > 255) {
          throw new WorldError('WORLD_DNS_BAD_RECORD', 'a TXT character-string is at most 255 bytes', {
            length: Buffer.byteLength(s, 'utf8'),
          });
        }
      }
    }
    this.setRRset(
      name,
      Packet.TYPE.TXT,
      data.map((strings) => ({ data: strings })),
      ttl,
    );
  }

  remove(name: string, type?: DnsRecordType): void {
    const key = normalizeName(name);
    if (type === undefined) this.names.delete(key);
    else this.names.get(key)?.rrsets.delete(TYPE_CODES[type]);
  }

  servfail(name: string, on: boolean): void {
    this.entry(name).servfail = on;
  }

  delay(name: string, ms: number): void {
    this.entry(name).delayMs = Math.max(0, ms);
  }

  /** The response to a request, and how long a test asked for it to be held. */
  answer(request: DnsPacket): { response: DnsPacket; delayMs: number } {
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    const question = request.questions[0];
    if (!question || request.questions.length !== 1) {
      response.header.rcode = RCODE.FORMERR;
      return { response, delayMs: 0 };
    }
    const qname = normalizeName(question.name);
    const own = this.names.get(qname);
    const delayMs = own?.delayMs ?? 0;
    if (own?.servfail) {
      response.header.aa = 0;
      response.header.rcode = RCODE.SERVFAIL;
      return { response, delayMs };
    }
    if (!this.nameExists(qname)) {
      response.header.rcode = RCODE.NXDOMAIN;
      response.authorities.push(this.soaFor(qname));
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
    if (response.answers.length === 0) response.authorities.push(this.soaFor(qname));
    return { response, delayMs };
  }

  private entry(name: string): NameEntry {
    const key = normalizeName(name);
    let e = this.names.get(key);
    if (!e) {
      e = { rrsets: new Map(), servfail: false, delayMs: 0 };
      this.names.set(key, e);
    }
    return e;
  }

  private setRRset(name: string, type: number, records: Array<Partial<DnsResource>>, ttl?: number): void {
    const e = this.entry(name);
    if (records.length === 0) e.rrsets.delete(type);
    else e.rrsets.set(type, { ttl: validTtl(ttl ?? this.defaultTtl), records });
  }

  // A name with no records of its own still exists if something below it does (empty non-terminal),
  // so it answers NODATA rather than NXDOMAIN, as a real authoritative server would.
  private nameExists(qname: string): boolean {
    const own = this.names.get(qname);
    if (own && own.rrsets.size > 0) return true;
    const suffix = `.${qname}`;
    for (const [n, e] of this.names) if (e.rrsets.size > 0 && n.endsWith(suffix)) return true;
    return false;
  }

  private soaFor(qname: string): DnsResource {
    const labels = qname.split('.');
    const zone = labels.length > 2 ? labels.slice(-2).join('.') : qname;
    return Packet.createResourceFromQuestion(
      { name: zone, type: Packet.TYPE.SOA, class: Packet.CLASS.IN } as DNS.Packet.Question,
      {
        name: zone,
        type: Packet.TYPE.SOA,
        class: Packet.CLASS.IN,
        ttl: this.negativeTtl,
        primary: `ns.${zone}`,
        admin: `hostmaster.${zone}`,
        serial: 1,
        refresh: 3600,
        retry: 600,
        expiration: 86400,
        minimum: this.negativeTtl,
      },
    );
  }
}
