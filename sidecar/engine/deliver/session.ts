/**
 * One outbound SMTP connection (nodemailer's SMTPConnection on a socket we connect ourselves, so the
 * source IP, destination IP and connect timeout are ours): EHLO with the virtual MTA's host name,
 * STARTTLS per use-starttls / require-starttls, SIZE, PIPELINING of MAIL, RCPT and DATA
 * (smtp-pipelining.ts), per-recipient results, and reuse across messages (RSET after a failed
 * transaction).
 */
import net from 'node:net';
import type { Readable } from 'node:stream';
import type SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { errorMessage } from '../../common/errors.js';
import { coalesceWrites } from './coalesce-writes.js';
import { PipeliningSMTPConnection } from './smtp-pipelining.js';

export interface SessionOptions {
  /** Destination address (already resolved). */
  address: string;
  port: number;
  /** MX host name, for SNI and `dsnMta`; '' for an address literal. */
  mxName: string;
  /** Source IP to bind; null = the OS's choice. */
  localAddress: string | null;
  ehlo: string;
  useStarttls: boolean;
  requireStarttls: boolean;
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  /** Inactivity limit for every command reply (and DATA chunks). */
  commandTimeoutMs: number;
  /** Limit for one whole transaction (MAIL … final DATA reply). */
  transactionTimeoutMs: number;
}

/** Reply for one recipient of one transaction. */
export interface RcptReply {
  /** Position in the envelope's `to`. */
  index: number;
  code: number;
  /** Full reply text, e.g. `250 2.0.0 Ok: queued as X`, or a local diagnostic. */
  reply: string;
  /** True when the reply came from the remote host (false: connection lost, local error). */
  remote: boolean;
}

/** Why a connection could not be set up; `reply` is the remote's refusal, if it sent one. */
export class SessionOpenError extends Error {
  readonly reply: string | null;
  readonly code: number | null;
  constructor(message: string, reply: string | null) {
    super(message);
    this.name = 'SessionOpenError';
    this.reply = reply;
    const m = reply ? /^(\d{3})/.exec(reply) : null;
    this.code = m?.[1] ? Number(m[1]) : null;
  }
}

export interface SendEnvelope {
  from: string;
  to: string[];
  size: number;
  /** DSN parameters passed on when the remote supports DSN. */
  envId: string | null;
  ret: 'FULL' | 'HDRS' | null;
}

interface SmtpError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
}

/** nodemailer fills `rejectedErrors` into the envelope object it was given; we read it from there. */
type NodemailerEnvelope = SMTPConnection.Envelope & { rejectedErrors?: SmtpError[] };

function firstLine(s: string): string {
  return s.replace(/\r?\n/g, ' ').trim();
}

/** 4.4.2 etc. for failures that produced no remote reply. */
function localReply(code: number, status: string, text: string): string {
  return `${code} ${status} ${text}`;
}

export class OutboundSession {
  readonly opts: SessionOptions;
  readonly localIp: string | null;
  readonly remoteIp: string;
  private readonly conn: SMTPConnection;
  private readonly socket: net.Socket;
  private closed = false;
  private socketClosed = false;
  private busy = false;
  /** Fails the transaction in flight when the connection dies under it. */
  private onDeath: ((err: SmtpError) => void) | null = null;
  private readonly closeListeners: Array<() => void> = [];
  messagesSent = 0;

  private constructor(opts: SessionOptions, conn: SMTPConnection, socket: net.Socket) {
    this.opts = opts;
    this.conn = conn;
    this.socket = socket;
    this.localIp = socket.localAddress ?? opts.localAddress;
    this.remoteIp = opts.address;
    conn.on('error', (err: SmtpError) => {
      this.closed = true;
      this.onDeath?.(err);
    });
    conn.on('end', () => {
      this.closed = true;
      this.onDeath?.(Object.assign(new Error('connection closed'), { code: 'ECONNECTION' }));
    });
    // The connection counts against max-smtp-out until the TCP socket is really gone, as the remote sees it.
    socket.once('close', () => {
      this.closed = true;
      this.socketClosed = true;
      for (const fn of this.closeListeners.splice(0)) fn();
    });
  }

  /** Connects, reads the greeting, EHLO (and STARTTLS). Rejects with SessionOpenError. */
  static open(opts: SessionOptions): Promise<OutboundSession> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({
        host: opts.address,
        port: opts.port,
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new SessionOpenError(`connect to ${opts.address}:${opts.port} timed out`, null));
      }, opts.connectTimeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new SessionOpenError(`connect to ${opts.address}:${opts.port}: ${errorMessage(err)}`, null));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        // Commands and the end-of-data dot go out as small writes: Nagle would hold each for the ACK.
        socket.setNoDelay(true);
        coalesceWrites(socket);
        socket.removeAllListeners('error');
        const conn = new PipeliningSMTPConnection({
          connection: socket,
          host: opts.mxName || opts.address,
          port: opts.port,
          name: opts.ehlo,
          greetingTimeout: opts.greetingTimeoutMs,
          socketTimeout: opts.commandTimeoutMs,
          ignoreTLS: !opts.useStarttls && !opts.requireStarttls,
          opportunisticTLS: opts.useStarttls && !opts.requireStarttls,
          requireTLS: opts.requireStarttls,
          // Remote MX certificates are rarely verifiable by name; STARTTLS here is opportunistic privacy.
          tls: { rejectUnauthorized: false },
          logger: false,
        });
        let settled = false;
        conn.once('error', (err: SmtpError) => {
          if (settled) return;
          settled = true;
          conn.close();
          const reply = err.response ? firstLine(err.response) : null;
          reject(new SessionOpenError(`${opts.mxName || opts.address}: ${firstLine(err.message)}`, reply));
        });
        conn.connect(() => {
          if (settled) return;
          settled = true;
          resolve(new OutboundSession(opts, conn, socket));
        });
      });
    });
  }

  get usable(): boolean {
    return !this.closed && !this.busy;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get secure(): boolean {
    return this.conn.secure;
  }

  /** Called once the TCP connection is fully closed. */
  onClose(fn: () => void): void {
    if (this.socketClosed) fn();
    else this.closeListeners.push(fn);
  }

  /** `mx.example.com (192.0.2.1)`, as dsnMta. */
  get mtaLabel(): string {
    return `${this.opts.mxName || this.remoteIp} (${this.remoteIp})`;
  }

  /**
   * One transaction. Always resolves with one reply per recipient; a connection that dies mid-way gives
   * the not-yet-answered recipients a local 4.4.2. A body stream is always consumed or destroyed.
   */
  send(envelope: SendEnvelope, body: Buffer | Readable): Promise<RcptReply[]> {
    this.busy = true;
    const env: NodemailerEnvelope = {
      from: envelope.from,
      to: envelope.to,
      size: envelope.size,
      use8BitMime: true,
    };
    if (envelope.envId || envelope.ret) {
      env.dsn = {
        ...(envelope.envId ? { envid: envelope.envId } : {}),
        // nodemailer's typings spell FULL as 'Full'; it upper-cases the value on the wire.
        ...(envelope.ret ? { ret: envelope.ret === 'FULL' ? ('Full' as const) : ('HDRS' as const) } : {}),
      };
    }
    const indexByRcpt = new Map<string, number[]>();
    envelope.to.forEach((r, i) => {
      const list = indexByRcpt.get(r.trim());
      if (list) list.push(i);
      else indexByRcpt.set(r.trim(), [i]);
    });

    return new Promise((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        finish(Object.assign(new Error('transaction timed out'), { code: 'ETIMEDOUT' }), null);
        this.close();
      }, this.opts.transactionTimeoutMs);

      const finish = (err: SmtpError | null, dataReply: string | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.onDeath = null;
        if (!Buffer.isBuffer(body) && !body.destroyed) body.destroy();
        const replies = this.collect(envelope.to.length, env, indexByRcpt, err, dataReply);
        // A 421 means the remote is closing the connection: no RSET, it would never be answered.
        const closing = replies.some((r) => r.remote && r.code === 421);
        if (closing) this.close();
        const needsReset = err?.code === 'EENVELOPE' && !this.closed;
        if (!err || err.code === 'EMESSAGE') this.messagesSent++;
        if (!needsReset) {
          this.busy = false;
          resolve(replies);
          return;
        }
        let settled = false;
        const settle = () => {
          if (settled) return;
          settled = true;
          this.onDeath = null;
          this.busy = false;
          resolve(replies);
        };
        // The connection may die before RSET is answered; the replies are known either way.
        this.onDeath = () => {
          this.close();
          settle();
        };
        this.conn.reset((resetErr) => {
          if (resetErr) this.close();
          settle();
        });
      };
      this.onDeath = (err) => finish(err, null);
      if (this.closed) {
        finish(Object.assign(new Error('connection closed'), { code: 'ECONNECTION' }), null);
        return;
      }
      this.conn.send(env, body, (err: SmtpError | null, info?: { response?: string }) => {
        finish(err, err ? null : (info?.response ?? '250 OK'));
      });
    });
  }

  private collect(
    count: number,
    env: NodemailerEnvelope,
    indexByRcpt: Map<string, number[]>,
    err: SmtpError | null,
    dataReply: string | null,
  ): RcptReply[] {
    const out: Array<RcptReply | undefined> = new Array(count);
    for (const rej of env.rejectedErrors ?? []) {
      const idx = indexByRcpt.get(rej.recipient ?? '')?.shift();
      if (idx === undefined) continue;
      const reply = firstLine(rej.response ?? '');
      out[idx] = { index: idx, code: rej.responseCode ?? 0, reply, remote: true };
    }
    // A 421 to one RCPT closed the connection before DATA: the recipients not rejected share that reply.
    const closedAt = err ? env.rejectedErrors?.find((e) => e.responseCode === 421 && e.response) : undefined;
    let rest: RcptReply;
    if (closedAt?.response) {
      rest = { index: -1, code: 421, reply: firstLine(closedAt.response), remote: true };
    } else if (!err && dataReply) {
      const reply = firstLine(dataReply);
      rest = { index: -1, code: Number(reply.slice(0, 3)) || 250, reply, remote: true };
    } else if (err?.response && (err.code === 'EENVELOPE' || err.code === 'EMESSAGE')) {
      const reply = firstLine(err.response);
      rest = { index: -1, code: err.responseCode ?? 0, reply, remote: true };
    } else if (err?.response && err.responseCode) {
      // The remote said something final (e.g. 421) and dropped the connection.
      const reply = firstLine(err.response);
      rest = { index: -1, code: err.responseCode, reply, remote: true };
    } else if (err?.code === 'EMESSAGE' && err.command === 'MAIL FROM') {
      rest = {
        index: -1,
        code: 552,
        reply: localReply(552, '5.3.4', 'message size exceeds remote SIZE limit'),
        remote: false,
      };
    } else if (err?.code === 'EENVELOPE') {
      rest = { index: -1, code: 553, reply: localReply(553, '5.1.3', firstLine(err.message)), remote: false };
    } else {
      const why = err ? firstLine(err.message) : 'no reply';
      rest = {
        index: -1,
        code: 451,
        reply: localReply(451, '4.4.2', `connection lost: ${why}`),
        remote: false,
      };
    }
    for (let i = 0; i < count; i++) out[i] ??= { ...rest, index: i };
    return out as RcptReply[];
  }

  /** QUIT and close; safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.quit();
    } catch {
      this.conn.close();
    }
    // A remote that never answers QUIT or never closes its side must not keep the socket.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }
}
