/**
 * Loopback address and port helpers for the test world. Everything here stays inside 127.0.0.0/8:
 * Linux routes the whole /8 to `lo`, so each test file can take its own random 127.X.Y.0/24 and
 * run sinks on distinct addresses without colliding with test files running in parallel.
 */
import { randomInt } from 'node:crypto';
import net from 'node:net';
import { WorldError } from './errors.js';

/** True for an IPv4 address inside 127.0.0.0/8. */
export function isLoopbackV4(host: string): boolean {
  const parts = host.split('.');
  if (parts.length !== 4 || parts[0] !== '127') return false;
  return parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

/** Throws unless `host` is a 127.x.y.z address; the test world must never touch a real network. */
export function assertLoopback(host: string): void {
  if (!isLoopbackV4(host)) {
    throw new WorldError('WORLD_NOT_LOOPBACK', `test world only uses 127.0.0.0/8, got ${host}`, { host });
  }
}

/** A TCP port that was free on `host` a moment ago (the OS picked it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  assertLoopback(host);
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A random `127.X.Y` prefix (X in 10..250, Y in 0..255) for one test file's addresses.
 * 127.0.0.x and 127.1..9.x are left alone because other tools on the box use them.
 */
export function testSubnet(): string {
  return `127.${randomInt(10, 251)}.${randomInt(0, 256)}`;
}

/** Host `n` (1..254) of a `127.X.Y` prefix from testSubnet(). */
export function addr(prefix: string, n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 254) {
    throw new WorldError('WORLD_BAD_ADDRESS', `host number must be 1..254, got ${n}`, { prefix, n });
  }
  const host = `${prefix}.${n}`;
  assertLoopback(host);
  return host;
}
