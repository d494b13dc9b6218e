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
  private readonly shared: ConnectionShared;
  private unixPath: string | null = null;

  constructor(
    handler: PolicyHandler,
    private readonly log: Logger,
    opts: PolicyServerOptions = {},
  ) {
    this.shared = {
      handler,
      log,
      warn: throttledWarn(log),
      counters: this.counters,
      sockets: this.sockets,
      limits: opts.limits ?? DEFAULT_READER_LIMITS,
      idleTimeoutMs: opts.idleTimeoutMs ?? 600_000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      writeStallMs: opts.writeStallMs ?? 30_000,
    };
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
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      new PolicyConnection(socket, this.shared).start();
    });
    server.on('error', (err) => this.log.error('listener error', { error: errorMessage(err) }));
    this.servers.push(server);
    return server;
  }
}

/** What the server's connections share: the handler, reader limits, timeouts, counters and warnings. */
interface ConnectionShared {
  handler: PolicyHandler;
  log: Logger;
  warn: (msg: string, fields: Record<string, unknown>) => void;
  counters: ServerCounters;
  sockets: Set<net.Socket>;
  limits: ReaderLimits;
  idleTimeoutMs: number;
  requestTimeoutMs: number;
  writeStallMs: number;
}

/** One smtpd connection: its reader, its transaction, and the timers that guard it. */
class PolicyConnection {
  private readonly peer: string;
  private readonly reader: PolicyReader;
  private readonly txn = new Transaction();
  /** Reused for every read: the complete request blocks it held. */
  private readonly blocks: string[] = [];
  private requestTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly socket: net.Socket,
    private readonly shared: ConnectionShared,
  ) {
    this.peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    this.reader = new PolicyReader(shared.limits);
  }

  start(): void {
    const { socket, shared } = this;
    shared.counters.open++;
    shared.counters.accepted++;
    shared.sockets.add(socket);
    socket.setEncoding('utf8');
    socket.setTimeout(shared.idleTimeoutMs, () => socket.end());
    socket.on('drain', () => this.onDrain());
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) =>
      shared.log.debug('policy client connection error', { client: this.peer, error: err.message }),
    );
    socket.on('close', () => this.onClose());
  }

  private onData(chunk: string): void {
    const { reader, blocks } = this;
    const ok = reader.push(chunk, blocks);
    let out = '';
    for (const block of blocks) {
      const reply = this.answer(block);
      if (reply === null) break;
      out += reply;
    }
    blocks.length = 0;
    if (this.socket.destroyed) return;
    this.send(out);
    if (!ok) {
      this.drop(reader.error!.message, { code: reader.error!.code });
      return;
    }
    // The clock runs while a request is incomplete and nothing more arrives.
    if (this.requestTimer) clearTimeout(this.requestTimer);
    this.requestTimer = null;
    if (reader.pendingLength > 0 && !this.stallTimer) {
      this.requestTimer = setTimeout(
        () => this.drop('incomplete request timed out'),
        this.shared.requestTimeoutMs,
      );
    }
  }

  /** Half-closed: answer a last request that lacks only its empty line, then close our side. */
  private onEnd(): void {
    const rest = this.reader.finish();
    if (rest !== null) {
      this.shared.warn('policy request not terminated by an empty line', { client: this.peer });
      const reply = this.answer(rest);
      if (reply !== null) this.send(reply);
    }
    if (!this.socket.destroyed) this.socket.end();
  }

  private onDrain(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    this.socket.resume();
  }

  private onClose(): void {
    if (this.requestTimer) clearTimeout(this.requestTimer);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.shared.counters.open--;
    this.shared.sockets.delete(this.socket);
  }

  /** The encoded reply to one request block, or null when the block broke the protocol (dropped). */
  private answer(block: string): string | null {
    const { shared } = this;
    const parsed = parseRequestBlock(block, shared.limits);
    if (!parsed.ok) {
      this.drop(parsed.error.message, { code: parsed.error.code });
      return null;
    }
    shared.counters.requests++;
    shared.counters.unknownAttributes += parsed.value.unknown;
    const req = parsed.value.request;
    if (req.request !== 'smtpd_access_policy') {
      // Still a well-framed request: answer it (no opinion) so the client does not hang.
      shared.warn('policy request without request=smtpd_access_policy', {
        client: this.peer,
        request: req.request,
      });
      return encodeReply('DUNNO');
    }
    return encodeReply(shared.handler(req, this.txn));
  }

  private send(out: string): void {
    const { socket } = this;
    if (out === '' || socket.destroyed) return;
    if (!socket.write(out) && !this.stallTimer) {
      // The client is not reading: stop reading its requests until it catches up, or give up on it.
      socket.pause();
      // While we are not reading, a half-received request is our doing, not the client's.
      if (this.requestTimer) clearTimeout(this.requestTimer);
      this.requestTimer = null;
      this.stallTimer = setTimeout(
        () => this.drop('client does not read its replies'),
        this.shared.writeStallMs,
      );
    }
  }

  private drop(reason: string, fields: Record<string, unknown> = {}): void {
    this.shared.counters.protocolErrors++;
    this.shared.warn(`disconnecting policy client: ${reason}`, { client: this.peer, ...fields });
    this.socket.destroy();
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
