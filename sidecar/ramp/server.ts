/**
 * The socketmap TCP server Postfix's trivial-rewrite and smtpd connect to. Answers come from memory
 * (RampRouter), never from disk, so a slow database cannot slow Postfix's address resolution. Malformed
 * input gets a PERM reply — Postfix treats any lookup error as a temporary failure and holds the mail —
 * and broken framing also closes the connection, since the stream cannot be resynchronised.
 */
import net from 'node:net';
import { FreightError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { HostPort } from '../config/model.js';
import type { RampRouter } from './router.js';
import { formatReply, NetstringDecoder, parseRequest } from './socketmap.js';

/** Postfix drops idle socketmap connections after 10 s; anything idle far longer is a dead client. */
const IDLE_TIMEOUT_MS = 300_000;

export class RampServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** Lookups answered since start (for the log on stop). */
  lookups = 0;

  constructor(
    private readonly router: RampRouter,
    private readonly log: Logger,
  ) {
    this.server = net.createServer((socket) => this.onConnection(socket));
    this.server.maxConnections = 1000;
  }

  listen(address: HostPort): Promise<HostPort> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          new FreightError(
            'RAMP_LISTEN',
            `cannot listen on ${address.host}:${address.port}: ${err.message}`,
            {
              code: err.code,
            },
          ),
        );
      };
      this.server.once('error', onError);
      this.server.listen({ host: address.host, port: address.port }, () => {
        this.server.off('error', onError);
        const a = this.server.address() as net.AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', (err) => this.log.debug('socketmap client error', { reason: err.message }));
    const decoder = new NetstringDecoder();
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      const replies: Buffer[] = [];
      for (;;) {
        const r = decoder.next();
        if (r.kind === 'incomplete') break;
        if (r.kind === 'malformed') {
          this.log.warn('malformed socketmap request; closing the connection', {
            reason: r.reason,
            peer: socket.remoteAddress,
          });
          replies.push(formatReply({ status: 'PERM', reason: `malformed request: ${r.reason}` }));
          socket.end(Buffer.concat(replies));
          socket.removeAllListeners('data');
          return;
        }
        const req = parseRequest(r.payload);
        this.lookups++;
        if (!req) {
          this.log.warn('socketmap request without a name and key', { peer: socket.remoteAddress });
          replies.push(formatReply({ status: 'PERM', reason: 'malformed request: expected "name key"' }));
          continue;
        }
        replies.push(formatReply(this.router.answer(req.name, req.key)));
      }
      if (replies.length > 0) socket.write(replies.length === 1 ? replies[0]! : Buffer.concat(replies));
    });
  }
}
