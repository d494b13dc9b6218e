/**
 * `<source CIDR>` matching for intake: the most specific block containing the client address decides
 * whether it may relay and how its headers are processed (PowerMTA's rule).
 */
import net from 'node:net';
import { FreightError } from '../../common/errors.js';
import type { SourceBlock } from '../../config/model.js';

interface Compiled {
  block: SourceBlock;
  list: net.BlockList;
  prefix: number;
}

/** `::ffff:127.0.0.1` → `127.0.0.1`, so IPv4 ranges match IPv4 clients on a dual-stack socket. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && net.isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

function compile(block: SourceBlock): Compiled {
  const text = block.cidr.trim();
  const slash = text.indexOf('/');
  let addr = slash >= 0 ? text.slice(0, slash) : text;
  const family = net.isIPv6(addr) ? 'ipv6' : 'ipv4';
  // PowerMTA writes the catch-all as `0/0`.
  if (family === 'ipv4' && /^\d+$/.test(addr)) addr = `${addr}.0.0.0`.split('.').slice(0, 4).join('.');
  const prefix = slash >= 0 ? Number(text.slice(slash + 1)) : family === 'ipv4' ? 32 : 128;
  if (!net.isIP(addr) || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 'ipv4' ? 32 : 128)) {
    throw new FreightError('ENGINE_BAD_SOURCE', `invalid <source> range ${block.cidr}`, { cidr: block.cidr });
  }
  const list = new net.BlockList();
  list.addSubnet(addr, prefix, family);
  return { block, list, prefix };
}

export class SourceAcl {
  private readonly compiled: Compiled[];

  constructor(sources: SourceBlock[]) {
    this.compiled = sources.map(compile).sort((a, b) => b.prefix - a.prefix);
  }

  /** The most specific `<source>` containing `ip`, or null. */
  match(ip: string): SourceBlock | null {
    const addr = normalizeIp(ip);
    const family = net.isIPv6(addr) ? 'ipv6' : 'ipv4';
    for (const c of this.compiled) if (c.list.check(addr, family)) return c.block;
    return null;
  }
}
