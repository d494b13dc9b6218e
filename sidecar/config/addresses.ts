/** Address shapes the config accepts: source ranges and allow lists (CIDRs) and EHLO host names. */
import { isIP } from 'node:net';

/** `192.0.2.0/24`, `2001:db8::/32`, a bare address, or PowerMTA's `0/0` (everything). */
export function validCidr(text: string): boolean {
  if (text === '0/0') return true;
  const [addr, prefix, extra] = text.split('/');
  if (extra !== undefined || !addr) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

/** A DNS host name usable in EHLO. */
export function validHostName(text: string): boolean {
  return /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(
    text,
  );
}
