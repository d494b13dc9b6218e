/**
 * The test DNS server's sockets: UDP and TCP bound to the same loopback port (resolvers fall back to
 * TCP on the port they were given), retried on another OS-picked port when the UDP one is taken.
 */
import type net from 'node:net';
import { TCPServer, UDPServer } from 'dns2';
import type { DnsPacket } from './dns-zone.js';
import { WorldError } from './errors.js';

export type Transport = 'udp' | 'tcp';
export type DnsHandler = (
  request: DnsPacket,
  send: (response: DnsPacket) => Promise<Buffer> | unknown,
  transport: Transport,
) => void;

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

export interface DnsSockets {
  port: number;
  close(): Promise<void>;
}

function makeUdp(handle: DnsHandler): InstanceType<typeof UDPServer> {
  const socket = new UDPServer({ type: 'udp4' });
  socket.on('request', (req: DnsPacket, send: (r: DnsPacket) => Promise<Buffer>) => handle(req, send, 'udp'));
  // Malformed queries are the client's problem; the server keeps running.
  socket.on('requestError', () => undefined);
  return socket;
}

/** Binds UDP and TCP on `host` at `port` (0: one the OS picks that is free for both). */
export async function bindDnsSockets(
  host: string,
  port: number | undefined,
  handle: DnsHandler,
): Promise<DnsSockets> {
  const tcpSockets = new Set<net.Socket>();
  let udp = makeUdp(handle);
  const tcp = new TCPServer();
  tcp.on('request', (req: DnsPacket, send: (r: DnsPacket) => Promise<Buffer>) => handle(req, send, 'tcp'));
  tcp.on('connection', (socket: net.Socket) => {
    tcpSockets.add(socket);
    socket.on('close', () => tcpSockets.delete(socket));
  });
  tcp.on('requestError', () => undefined);

  // UDP and TCP must share one port number; with an OS-picked port the UDP one may be taken.
  let bound = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      bound = await listenTcp(tcp, port ?? 0, host);
      await bindUdp(udp, bound, host);
      break;
    } catch (err) {
      await closeTcp(tcp);
      await closeUdp(udp);
      udp = makeUdp(handle);
      if (port !== undefined || attempt >= 20) {
        throw new WorldError(
          'WORLD_DNS_LISTEN',
          `cannot bind DNS server to ${host}:${port ?? bound}`,
          { host, port: port ?? bound },
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
  return {
    port: bound,
    async close() {
      for (const s of tcpSockets) s.destroy();
      await Promise.all([closeTcp(tcp), closeUdp(udp)]);
    },
  };
}
