/**
 * Sink MX server for the test world (smtp-server on one 127.x address). It records every arrival
 * and connection so tests can prove delivery, rate and connection limits, and it answers as the
 * test scripts it (see SinkScript), changeable while it runs.
 */
import type net from 'node:net';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { testCertificate } from './cert.js';
import { WorldError } from './errors.js';
import { assertLoopback } from './ports.js';
import { SinkConnections } from './sink-connections.js';
import {
  type Arrival,
  type ConnectionRecord,
  MessageScanner,
  parseHeaders,
  peakInWindow,
  type Refusal,
  type RefusalStage,
} from './sink-records.js';
import { matchRule, ScriptState, type SinkReply, type SinkScript } from './sink-script.js';

export interface SinkOptions {
  /** A 127.x.y.z address; the sink listens only there. */
  host: string;
  /** 0 lets the OS pick (read it back from `sink.port`). */
  port: number;
  /** Label in arrivals and the greeting (default: host). */
  name?: string;
  script?: SinkScript;
  /** Offer STARTTLS with the test world's self-signed certificate. */
  tls?: boolean;
  /** Keep each message's bytes in `Arrival.raw` (off by default so high-rate tests stay small). */
  keepRaw?: boolean;
  /** SIZE limit advertised in EHLO (default 64 MiB). */
  size?: number;
}

const DEFAULT_MAX_MESSAGES_REPLY: SinkReply = {
  code: 421,
  message: '4.7.0 Too many messages on this connection',
};

function replyError(reply: SinkReply): Error {
  const err = new Error(reply.message) as Error & { responseCode: number };
  err.responseCode = reply.code;
  return err;
}

const isFailure = (reply: SinkReply): boolean => reply.code >= 400;

export class Sink {
  readonly name: string;
  readonly host: string;
  port = 0;
  private arrivalList: Arrival[] = [];
  private refusalList: Refusal[] = [];
  private state: ScriptState;
  private readonly server: SMTPServer;
  private readonly conns: SinkConnections;
  private readonly waiters = new Set<() => void>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly opts: SinkOptions,
    tlsMaterial?: { key: string; cert: string },
  ) {
    this.host = opts.host;
    this.name = opts.name ?? opts.host;
    this.state = new ScriptState(opts.script ?? {});
    this.conns = new SinkConnections(this.name, () => this.notify());
    this.server = new SMTPServer({
      name: this.name,
      logger: false,
      disableReverseLookup: true,
      authOptional: true,
      disabledCommands: tlsMaterial ? ['AUTH'] : ['AUTH', 'STARTTLS'],
      ...(tlsMaterial ?? {}),
      size: opts.size ?? 64 * 1024 * 1024,
      maxAllowedUnauthenticatedCommands: false,
      closeTimeout: 1000,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onMailFrom: (address, session, cb) => this.onMailFrom(address.address, session, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address.address, session, cb),
      onData: (stream, session, cb) => this.onData(stream, session, cb),
      onSecure: (socket, session, cb) => this.onSecure(socket, session, cb),
      // smtp-server strips the raw socket's listeners at STARTTLS, so its own close signal backs ours up.
      onClose: (session) => {
        const conn = this.conns.of(session, false);
        if (conn) this.conns.close(conn);
      },
    });
    // Resets and aborted sessions surface here; a sink must outlive whatever its clients do.
    this.server.on('error', () => undefined);
    this.server.server.on('connection', (socket: net.Socket) => this.conns.accept(socket));
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }
  /** Accepted messages, oldest first. */
  get arrivals(): readonly Arrival[] {
    return this.arrivalList;
  }
  /** Every TCP connection since start/reset, oldest first (still-open ones have no closedAt). */
  get connections(): readonly ConnectionRecord[] {
    return this.conns.list;
  }
  /** Scripted non-2xx replies and drops, oldest first. */
  get refusals(): readonly Refusal[] {
    return this.refusalList;
  }
  get script(): SinkScript {
    return this.state.script;
  }

  /** Replace the script; applies to the next command on every connection. Resets defer RNG and rate windows. */
  setScript(script: SinkScript): void {
    this.state = new ScriptState(script);
  }

  currentConnections(sourceIp?: string): number {
    return this.conns.current(sourceIp);
  }

  /** Most connections open at the same time since start/reset (from accept to close, exact). */
  maxConcurrentConnections(sourceIp?: string): number {
    return this.conns.max(sourceIp);
  }

  /** Most SMTP transactions (MAIL FROM to the final DATA reply) in progress at once since start/reset. */
  maxConcurrentTransactions(): number {
    return this.conns.maxInTransaction();
  }

  /** Arrivals with t0 <= time < t1. */
  arrivalsBetween(t0: number, t1: number): Arrival[] {
    return this.arrivalList.filter((a) => a.time >= t0 && a.time < t1);
  }

  arrivalTimes(sourceIp?: string): number[] {
    return this.arrivalList
      .filter((a) => sourceIp === undefined || a.sourceIp === sourceIp)
      .map((a) => a.time)
      .sort((x, y) => x - y);
  }

  /** Most arrivals inside any window of `windowMs` (optionally from one source IP). */
  peakArrivals(windowMs: number, sourceIp?: string): number {
    return peakInWindow(this.arrivalTimes(sourceIp), windowMs);
  }

  /** Peak arrival rate per second, measured over the busiest sliding window of `windowMs`. */
  ratePerSecond(windowMs = 1000, sourceIp?: string): number {
    return (this.peakArrivals(windowMs, sourceIp) * 1000) / windowMs;
  }

  arrivalsBySourceIp(): Map<string, Arrival[]> {
    const out = new Map<string, Arrival[]>();
    for (const a of this.arrivalList) {
      const list = out.get(a.sourceIp) ?? [];
      list.push(a);
      out.set(a.sourceIp, list);
    }
    return out;
  }

  /** Resolves with the arrivals once there are at least `n`. */
  async waitForArrivals(n: number, timeoutMs = 10_000): Promise<Arrival[]> {
    await this.waitFor(() => this.arrivalList.length >= n, timeoutMs, `${n} arrivals`);
    return [...this.arrivalList];
  }

  /** Resolves when `predicate` holds; re-checked on every connection, arrival and refusal. */
  waitFor(predicate: (sink: Sink) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate(this)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new WorldError('WORLD_SINK_TIMEOUT', `sink ${this.name}: no ${what} within ${timeoutMs} ms`, {
            arrivals: this.arrivalList.length,
            connections: this.conns.list.length,
            refusals: this.refusalList.length,
          }),
        );
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Forget arrivals, closed connections, refusals and peaks; open connections stay recorded. */
  reset(): void {
    this.arrivalList = [];
    this.refusalList = [];
    this.conns.reset();
    this.state = new ScriptState(this.state.script);
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) =>
        reject(
          new WorldError('WORLD_SINK_LISTEN', `cannot listen on ${this.host}:${this.opts.port}`, undefined, {
            cause: err,
          }),
        );
      this.server.server.once('error', onError);
      this.server.listen({ port: this.opts.port, host: this.host, exclusive: true }, () => {
        this.server.server.off('error', onError);
        const address = this.server.server.address();
        this.port = typeof address === 'object' && address ? address.port : this.opts.port;
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.conns.destroyAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private notify(): void {
    for (const check of [...this.waiters]) check();
  }

  private later(ms: number, fn: () => void): void {
    if (!ms || ms <= 0) {
      fn();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  private onSecure(socket: net.Socket, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    this.conns.secure(socket, session);
    cb();
  }

  private refuse(
    session: SMTPServerSession,
    stage: RefusalStage,
    reply: SinkReply,
    address?: string,
  ): Error | undefined {
    const conn = this.conns.of(session);
    this.refusalList.push({
      time: Date.now(),
      connectionId: conn?.record.id ?? session.id,
      sourceIp: session.remoteAddress,
      stage,
      code: reply.code,
      message: reply.message,
      ...(address === undefined ? {} : { address }),
    });
    this.notify();
    return reply.code === 0 ? undefined : replyError(reply);
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    this.conns.of(session);
    const { bannerDelayMs = 0, connectReply } = this.state.script;
    this.later(bannerDelayMs, () => {
      const refused = connectReply && isFailure(connectReply);
      cb(refused ? this.refuse(session, 'connect', connectReply) : null);
    });
  }

  private onMailFrom(address: string, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const reply = this.mailReply(address, session);
    const conn = reply ? undefined : this.conns.of(session);
    if (conn) this.conns.transactionStarted(conn);
    cb(reply ? this.refuse(session, 'mail', reply, address) : null);
  }

  private mailReply(address: string, session: SMTPServerSession): SinkReply | undefined {
    const conn = this.conns.of(session);
    const s = this.state;
    const max = s.script.maxMessagesPerConnection;
    if (conn && max !== undefined && conn.record.messages >= max) {
      return s.script.maxMessagesReply ?? DEFAULT_MAX_MESSAGES_REPLY;
    }
    const limited = s.rateLimited(session.remoteAddress, Date.now());
    if (limited) return limited;
    const rule = matchRule(s.script.mailFrom, [address]);
    return rule && isFailure(rule) ? rule : undefined;
  }

  private onRcptTo(address: string, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    // A matching 2xx rule accepts outright, before any deferral roll.
    const rule = matchRule(this.state.script.rcptTo, [address]);
    const reply = rule ?? this.state.deferral('rcpt');
    cb(reply && isFailure(reply) ? this.refuse(session, 'rcpt', reply, address) : null);
  }

  private onData(
    stream: NodeJS.ReadableStream & { sizeExceeded?: boolean },
    session: SMTPServerSession,
    cb: (err?: Error | null, message?: string) => void,
  ): void {
    const conn = this.conns.of(session);
    const script = this.state.script;
    if (script.dropDuringData) {
      stream.once('data', () => {
        this.refuse(session, 'data', { code: 0, message: 'dropped during DATA' });
        conn?.socket.destroy();
      });
      stream.resume();
      return;
    }
    const scanner = new MessageScanner(this.opts.keepRaw === true);
    stream.on('data', (chunk: Buffer) => scanner.push(chunk));
    stream.once('end', () => {
      if (stream.sizeExceeded) {
        cb(replyError({ code: 552, message: '5.3.4 Message too big' }));
        return;
      }
      const time = Date.now();
      const rcptTo = session.envelope.rcptTo.map((r) => r.address);
      const state = this.state;
      const decided =
        matchRule(state.script.data, rcptTo) ?? state.deferral('data') ?? state.script.dataReply ?? undefined;
      this.later(state.script.dataDelayMs ?? 0, () => {
        if (conn) this.conns.transactionEnded(conn);
        if (decided && isFailure(decided)) {
          cb(this.refuse(session, 'data', decided));
          return;
        }
        const raw = scanner.raw;
        const rawHeaders = scanner.rawHeaders;
        const mailFrom = session.envelope.mailFrom;
        this.arrivalList.push({
          time,
          sink: this.name,
          connectionId: conn?.record.id ?? session.id,
          sourceIp: session.remoteAddress,
          ehlo: session.hostNameAppearsAs ? String(session.hostNameAppearsAs) : '',
          mailFrom: mailFrom ? mailFrom.address : '',
          rcptTo,
          headers: parseHeaders(rawHeaders),
          rawHeaders,
          size: scanner.size,
          bodySize: scanner.bodySize,
          tls: session.secure,
          ...(raw ? { raw } : {}),
        });
        if (conn) conn.record.messages++;
        state.noteAccepted(session.remoteAddress, time);
        this.notify();
        cb(null, decided ? decided.message : 'OK: queued');
      });
    });
  }
}

/** Starts a sink MX on `opts.host:opts.port`. */
export async function startSink(opts: SinkOptions): Promise<Sink> {
  assertLoopback(opts.host);
  const sink = new Sink(opts, opts.tls ? await testCertificate() : undefined);
  await sink.listen();
  return sink;
}
