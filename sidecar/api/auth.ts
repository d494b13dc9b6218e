/**
 * Who may call the management API. State-changing calls (anything but GET/HEAD) need `X-API-Key` equal
 * to `http-api-key`; with no key configured they are refused outright, so a fresh install is never open.
 * Read calls are allowed from the `http-read-allow` CIDRs (loopback by default) or with a valid key.
 * The peer address is the socket's: no X-Forwarded-For, so a proxy cannot widen access by a header.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { FreightError } from '../common/errors.js';

export const API_KEY_HEADER = 'x-api-key';

/** `10.0.0.0/8`, `::1/128`, a bare address, or PowerMTA's `0/0`; assumed valid (the config checked it). */
export function readAllowList(cidrs: string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    if (cidr === '0/0') {
      list.addSubnet('0.0.0.0', 0, 'ipv4');
      list.addSubnet('::', 0, 'ipv6');
      continue;
    }
    const [addr, prefix] = cidr.split('/') as [string, string | undefined];
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    list.addSubnet(addr, prefix === undefined ? (family === 'ipv4' ? 32 : 128) : Number(prefix), family);
  }
  return list;
}

/** A socket's peer address as the list should see it: IPv4-mapped IPv6 (`::ffff:1.2.3.4`) unwrapped. */
export function peerAddress(remote: string | undefined): string | null {
  if (!remote) return null;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remote);
  return mapped ? mapped[1]! : remote;
}

export function addressAllowed(list: BlockList, remote: string | undefined): boolean {
  const addr = peerAddress(remote);
  if (!addr) return false;
  return list.check(addr, isIP(addr) === 6 ? 'ipv6' : 'ipv4');
}

/** True for an address inside 127.0.0.0/8 or ::1 (the only listeners that need no explicit choice). */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const addr = peerAddress(host) ?? '';
  if (isIP(addr) === 4) return addr.startsWith('127.');
  return addr === '::1';
}

/** Constant-time comparison; hashing first makes the lengths equal so the length leaks nothing either. */
export function keyMatches(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export interface AccessPolicy {
  apiKey: string | null;
  readAllow: BlockList;
}

const READ_METHODS = new Set(['GET', 'HEAD']);

/** Throws a FreightError with an HTTP-mapped code (see errors.ts) when the request may not proceed. */
export function checkAccess(policy: AccessPolicy, req: FastifyRequest): void {
  const header = req.headers[API_KEY_HEADER];
  const given = Array.isArray(header) ? header[0] : header;
  const keyOk = given !== undefined && policy.apiKey !== null && keyMatches(given, policy.apiKey);
  if (READ_METHODS.has(req.method)) {
    if (addressAllowed(policy.readAllow, req.socket.remoteAddress) || keyOk) return;
    if (policy.apiKey === null) {
      throw new FreightError(
        'API_READ_FORBIDDEN',
        `reads from ${peerAddress(req.socket.remoteAddress)} are not in http-read-allow`,
      );
    }
    if (given !== undefined)
      throw new FreightError('API_KEY_INVALID', 'X-API-Key does not match http-api-key');
    throw new FreightError(
      'API_KEY_REQUIRED',
      `reads from ${peerAddress(req.socket.remoteAddress)} are not in http-read-allow; send X-API-Key`,
    );
  }
  if (policy.apiKey === null) {
    throw new FreightError(
      'API_KEY_NOT_CONFIGURED',
      'state-changing calls are disabled until http-api-key is set in freight.conf',
    );
  }
  if (given === undefined) throw new FreightError('API_KEY_REQUIRED', 'this call needs the X-API-Key header');
  if (!keyOk) throw new FreightError('API_KEY_INVALID', 'X-API-Key does not match http-api-key');
}

/** The onRequest hook: policy is read per request so a reload (new key, new CIDRs) applies at once. */
export function accessHook(policy: () => AccessPolicy) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    checkAccess(policy(), req);
  };
}
