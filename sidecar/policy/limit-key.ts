/** The counting key of a limit for one request: its key attributes, normalized, joined by commas. */
import type { KeyPart } from './limits-config.js';
import { addressDomain, type PolicyRequest } from './request.js';

/** The key, or null when the request lacks an attribute the key needs (the limit does not apply). */
export function limitKey(parts: KeyPart[], req: PolicyRequest): string | null {
  let key = '';
  for (let i = 0; i < parts.length; i++) {
    const value = keyPart(parts[i]!, req);
    if (value === '') return null;
    key = i === 0 ? value : `${key},${value}`;
  }
  return key;
}

function keyPart(part: KeyPart, req: PolicyRequest): string {
  switch (part.attribute) {
    case 'sender_domain':
      return addressDomain(req.sender);
    case 'recipient_domain':
      return addressDomain(req.recipient);
    case 'client_address':
      return part.prefixV4 === null ? req.client_address.toLowerCase() : network(req.client_address, part);
    default:
      return req[part.attribute].toLowerCase();
  }
}

/** `192.0.2.77` with /24 → `192.0.2.0/24`; IPv6 by the IPv6 prefix. '' if the address does not parse. */
function network(address: string, part: KeyPart): string {
  if (address.includes(':')) {
    const groups = expandV6(address);
    if (!groups) return '';
    const prefix = part.prefixV6 ?? 128;
    const out = groups.map((g, i) => {
      const bits = Math.max(0, Math.min(16, prefix - i * 16));
      return bits === 0 ? 0 : g & (0xffff << (16 - bits)) & 0xffff;
    });
    return `${out.map((g) => g.toString(16)).join(':')}/${prefix}`;
  }
  const octets = address.split('.');
  if (octets.length !== 4) return '';
  let n = 0;
  for (const o of octets) {
    const v = Number(o);
    if (!/^\d{1,3}$/.test(o) || v > 255) return '';
    n = n * 256 + v;
  }
  const prefix = part.prefixV4!;
  const masked = prefix === 0 ? 0 : Math.floor(n / 2 ** (32 - prefix)) * 2 ** (32 - prefix);
  return `${[24, 16, 8, 0].map((s) => Math.floor(masked / 2 ** s) % 256).join('.')}/${prefix}`;
}

function expandV6(address: string): number[] | null {
  const [head, tail, extra] = address.split('::');
  if (extra !== undefined) return null;
  const parse = (s: string | undefined) => (s ? s.split(':') : []);
  const left = parse(head);
  const right = parse(tail);
  // An embedded IPv4 tail (::ffff:192.0.2.1) counts as two groups.
  const last = right.length > 0 ? right : left;
  if (last.length > 0 && last[last.length - 1]!.includes('.')) {
    const v4 = last.pop()!.split('.').map(Number);
    if (v4.length !== 4 || v4.some((x) => !(x >= 0 && x <= 255))) return null;
    last.push(((v4[0]! << 8) | v4[1]!).toString(16), ((v4[2]! << 8) | v4[3]!).toString(16));
  }
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return null;
  const groups = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right];
  const out: number[] = [];
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return null;
    out.push(Number.parseInt(g, 16));
  }
  return out;
}
