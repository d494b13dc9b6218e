/**
 * Listeners for check_policy_service: TCP and a unix socket. Each connection carries many requests, one
 * at a time (smtpd waits for each reply); replies produced from one read are written in one write.
 * A client that breaks the protocol, stalls mid-request or stops reading its replies is disconnected
 * with a warning; nothing it does reaches other connections.
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { errorMessage, FreightError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { Transaction } from './decide.js';
import {
  DEFAULT_READER_LIMITS,
  encodeReply,
  PolicyReader,
  parseRequestBlock,
  type ReaderLimits,
} from './protocol.js';
import type { PolicyRequest } from './request.js';

export interface PolicyServerOptions {
  limits?: ReaderLimits;
  /** Close a connection idle this long (Postfix's own smtpd_policy_service_max_idle is 300 s). */
  idleTimeoutMs?: number;
  /** Disconnect a client that sends nothing for this long in the middle of a request. */
  requestTimeoutMs?: number;
  /** Disconnect a client that does not read its replies for this long. */
  writeStallMs?: number;
}

export type PolicyHandler = (req: PolicyRequest, txn: Transaction) => string;

export interface ServerCounters {
  open: number;
  accepted: number;
  requests: number;
  protocolErrors: number;
  unknownAttributes: number;
}

/** At most `perSecond` warnings a second; the rest are counted and summarised. */
function throttledWarn(log: Logger, perSecond = 20): (msg: string, fields: Record<string, unknown>) => void {
  let windowStart = 0;
  let sent = 0;
  let skipped = 0;
  return (msg, fields) => {
    const now = Date.now();
    if (now - windowStart >= 1000) {
      if (skipped > 0) log.warn('more client warnings suppressed', { count: skipped });
      windowStart = now;
      sent = 0;
      skipped = 0;
    }
    if (sent++ < perSecond) log.warn(msg, fields);
    else skipped++;
  };
}

export class PolicyServer {
  readonly counters: ServerCounters = {
    open: 0,
    accepted: 0,
    requests: 0,
    protocolErrors: 0,
    unknownAttributes: 0,
  };
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly limits: ReaderLimits;
  private readonly idleTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly writeStallMs: number;
  private readonly warn: (msg: string, fields: Record<string, unknown>) => void;
  private unixPath: string | null = null;

  constructor(
    private readonly handler: PolicyHandler,
    private readonly log: Logger,
    opts: PolicyServerOptions = {},
  ) {
    this.limits = opts.limits ?? DEFAULT_READER_LIMITS;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 600_000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.writeStallMs = opts.writeStallMs ?? 30_000;
    this.warn = throttledWarn(log);
  }

  listenTcp(host: string, port: number): Promise<net.AddressInfo> {
    const server = this.createServer();
    return new Promise((resolve, reject) => {
      server.once('error', (err) =>
        reject(new FreightError('POLICY_LISTEN', `cannot listen on ${host}:${port}: ${errorMessage(err)}`)),
      );
      server.listen({ host, port, backlog: 4096 }, () => resolve(server.address() as net.AddressInfo));
    });
  }

  async listenUnix(path: string): Promise<void> {
    if (existsSync(path)) {
      if (await socketAnswers(path)) {
        throw new FreightError('POLICY_LISTEN', `unix socket ${path} is in use by another process`);
      }
      unlinkSync(path);
    }
    const server = this.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new FreightError('POLICY_LISTEN', `cannot listen on ${path}: ${errorMessage(err)}`)),
      );
      server.listen({ path, backlog: 4096 }, () => resolve());
    });
    // smtpd runs as the postfix user; access is controlled by the directory holding the socket.
    chmodSync(path, 0o666);
    this.unixPath = path;
  }

  /** Stop accepting, let connections finish their current reply, then close them. */
  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    for (const s of this.sockets) s.end();
    const deadline = Date.now() + 2000;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.sockets) s.destroy();
    if (this.unixPath && existsSync(this.unixPath)) unlinkSync(this.unixPath);
  }

  private createServer(): net.Server {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.serve(socket));
    server.on('error', (err) => this.log.error('listener error', { error: errorMessage(err) }));
    this.servers.push(server);
    return server;
  }

  private serve(socket: net.Socket): void {
    this.counters.open++;
    this.counters.accepted++;
    this.sockets.add(socket);
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    const reader = new PolicyReader(this.limits);
    const txn = new Transaction();
    const blocks: string[] = [];
    let requestTimer: NodeJS.Timeout | null = null;
    let stallTimer: NodeJS.Timeout | null = null;

    const drop = (reason: string, fields: Record<string, unknown> = {}) => {
      this.counters.protocolErrors++;
      this.warn(`disconnecting policy client: ${reason}`, { client: peer, ...fields });
      socket.destroy();
    };
    const answer = (block: string): string | null => {
      const parsed = parseRequestBlock(block, this.limits);
      if (!parsed.ok) {
        drop(parsed.error.message, { code: parsed.error.code });
        return null;
      }
      this.counters.requests++;
      this.counters.unknownAttributes += parsed.value.unknown;
      const req = parsed.value.request;
      if (req.request !== 'smtpd_access_policy') {
        // Still a well-framed request: answer it (no opinion) so the client does not hang.
        this.warn('policy request without request=smtpd_access_policy', {
          client: peer,
          request: req.request,
        });
        return encodeReply('DUNNO');
      }
      return encodeReply(this.handler(req, txn));
    };
    const send = (out: string) => {
      if (out === '' || socket.destroyed) return;
      if (!socket.write(out) && !stallTimer) {
        // The client is not reading: stop reading its requests until it catches up, or give up on it.
        socket.pause();
        // While we are not reading, a half-received request is our doing, not the client's.
        if (requestTimer) clearTimeout(requestTimer);
        requestTimer = null;
        stallTimer = setTimeout(() => drop('client does not read its replies'), this.writeStallMs);
      }
    };

    socket.setEncoding('utf8');
    socket.setTimeout(this.idleTimeoutMs, () => socket.end());
    socket.on('drain', () => {
      if (stallTimer) clearTimeout(stallTimer);
      stallTimer = null;
      socket.resume();
    });
    socket.on('data', (chunk: string) => {
      const ok = reader.push(chunk, blocks);
      let out = '';
      for (const block of blocks) {
        const reply = answer(block);
        if (reply === null) break;
        out += reply;
      }
      blocks.length = 0;
      if (socket.destroyed) return;
      send(out);
      if (!ok) {
        drop(reader.error!.message, { code: reader.error!.code });
        return;
      }
      // The clock runs while a request is incomplete and nothing more arrives.
      if (requestTimer) clearTimeout(requestTimer);
      requestTimer = null;
      if (reader.pendingLength > 0 && !stallTimer) {
        requestTimer = setTimeout(() => drop('incomplete request timed out'), this.requestTimeoutMs);
      }
    });
    socket.on('end', () => {
      // Half-closed: answer a last request that lacks only its empty line, then close our side.
      const rest = reader.finish();
      if (rest !== null) {
        this.warn('policy request not terminated by an empty line', { client: peer });
        const reply = answer(rest);
        if (reply !== null) send(reply);
      }
      if (!socket.destroyed) socket.end();
    });
    socket.on('error', (err) =>
      this.log.debug('policy client connection error', { client: peer, error: err.message }),
    );
    socket.on('close', () => {
      if (requestTimer) clearTimeout(requestTimer);
      if (stallTimer) clearTimeout(stallTimer);
      this.counters.open--;
      this.sockets.delete(socket);
    });
  }
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}
