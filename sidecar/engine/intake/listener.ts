/**
 * Engine intake: the `smtp-listener` that Postfix's lmtp/smtp transport and trusted
 * applications deliver to. One port speaks both protocols: the client's first command picks LMTP (LHLO,
 * per-recipient replies after DATA) or SMTP (EHLO/HELO). Only `<source>` ranges allowed to relay get in
 * (554 5.7.1 otherwise). 250 is answered only once the spool has fsync'd the message; a nearly full
 * spool disk, a saturated scheduler or a failing disk answer 4xx so the client (Postfix) keeps the mail.
 */
import net from 'node:net';
import {
  SMTPServer,
  type SMTPServerDataStream,
  type SMTPServerOptions,
  type SMTPServerSession,
} from 'smtp-server';
import type { AcctWriter } from '../../acct/writer.js';
import { errorMessage } from '../../common/errors.js';
import { createLogger, type Logger } from '../../common/log.js';
import type { FreightConfig, SourceBlock } from '../../config/model.js';
import type { IntakeStatus } from '../control/index.js';
import { coalesceWrites } from '../deliver/index.js';
import { FAULTS, faultPoint } from '../fault-inject.js';
import type { EngineSettings } from '../settings.js';
import { receivedRows, type Spool, type SpoolEntry } from '../spool/index.js';
import type { SchedulerPort } from '../types.js';
import { processHeaders, receivedHeader } from './headers.js';
import { normalizeIp, SourceAcl } from './source-acl.js';

export interface IntakeDeps {
  config: FreightConfig;
  settings: EngineSettings;
  spool: Spool;
  scheduler: SchedulerPort;
  acct: AcctWriter | null;
  log?: Logger;
}

/** An SMTP reply carried as an error (smtp-server sends `responseCode message`). */
function reply(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

interface DsnEnvelope {
  dsn?: { ret: string | null; envid: string | null };
}
interface DsnAddress {
  address: string;
  args: Record<string, string | boolean>;
  dsn?: { notify?: string[]; orcpt?: string };
}

/** smtp-server's `connect(socket)` hands it an accepted socket; it is public but not in the typings. */
type Connectable = SMTPServer & { connect(socket: net.Socket, opts: object): void };

export class Intake {
  private deps: IntakeDeps;
  private acl: SourceAcl;
  private readonly log: Logger;
  private front: net.Server | null = null;
  private readonly lmtp: Connectable;
  private readonly smtp: Connectable;
  private readonly sources = new Map<string, SourceBlock>();
  private draining = false;
  private inFlightData = 0;
  private accepted = 0;
  private acceptedRcpts = 0;
  private tempRejected = 0;

  constructor(deps: IntakeDeps) {
    this.deps = deps;
    this.log = deps.log ?? createLogger('engine/intake');
    this.acl = new SourceAcl(deps.config.sources);
    this.lmtp = new SMTPServer(this.serverOptions(true)) as Connectable;
    this.smtp = new SMTPServer(this.serverOptions(false)) as Connectable;
    for (const s of [this.lmtp, this.smtp]) {
      s.on('error', (err) => this.log.warn('intake session error', { error: errorMessage(err) }));
    }
    deps.spool.setWriters(() => this.lmtp.connections.size + this.smtp.connections.size);
    deps.spool.setDurableListener((entry) => this.writeReceived(entry));
  }

  private serverOptions(lmtp: boolean): SMTPServerOptions {
    return {
      lmtp,
      name: this.deps.config.global.hostName,
      banner: 'Freight',
      logger: false,
      disableReverseLookup: true,
      authOptional: true,
      hideSTARTTLS: true,
      // Replies carry their own enhanced codes (e.g. 5.7.1, 4.3.1), which the defaults would contradict.
      hideENHANCEDSTATUSCODES: true,
      size: this.deps.settings.maxMessageSize,
      socketTimeout: 5 * 60_000,
      closeTimeout: 10_000,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onMailFrom: (_addr, session, cb) => this.onMailFrom(session, cb),
      onRcptTo: (_addr, session, cb) => this.onRcptTo(session, cb),
      onData: (stream, session, cb) => this.onData(stream, session, cb),
      onClose: (session) => this.sources.delete(session.id),
    } as SMTPServerOptions;
  }

  /** Apply a reloaded config: sources and limits change at once; a new listener address needs a restart. */
  reconfigure(config: FreightConfig, settings: EngineSettings): void {
    const acl = new SourceAcl(config.sources);
    const old = this.deps.config.global.smtpListener;
    const now = config.global.smtpListener;
    if (old.host !== now.host || old.port !== now.port) {
      this.log.warn('smtp-listener changed; restart the engine to move it', { from: old, to: now });
    }
    this.deps = { ...this.deps, config, settings };
    this.acl = acl;
    for (const s of [this.lmtp, this.smtp])
      (s as unknown as { options: { size: number } }).options.size = settings.maxMessageSize;
  }

  listen(): Promise<void> {
    const { host, port } = this.deps.config.global.smtpListener;
    this.front = net.createServer((socket) => this.sniff(socket));
    this.front.maxConnections = this.deps.settings.maxSmtpIn;
    return new Promise((resolve, reject) => {
      this.front!.once('error', reject);
      this.front!.listen({ host, port }, () => {
        this.front!.off('error', reject);
        this.log.info('intake listening', { address: `${host}:${port}` });
        resolve();
      });
    });
  }

  /**
   * Greet, read the first command, and hand the socket to the LMTP or SMTP server with that command
   * pushed back; the server's own greeting is swallowed so the client sees exactly one.
   */
  private sniff(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    // Replies are small separate writes (one per LMTP recipient): Nagle + delayed ACK would stall each.
    socket.setNoDelay(true);
    socket.setTimeout(60_000, () => socket.destroy());
    const ip = normalizeIp(socket.remoteAddress ?? '');
    const source = this.acl.match(ip);
    if (!source?.alwaysAllowRelaying) {
      this.log.info('connection refused: not a relaying <source>', { ip });
      socket.end(`554 5.7.1 ${ip} is not allowed to relay through ${this.deps.config.global.hostName}\r\n`);
      return;
    }
    socket.write(`220 ${this.deps.config.global.hostName} ESMTP Freight\r\n`);
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.indexOf(10) < 0) {
        if (buf.length > 4096) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.pause();
      socket.setTimeout(0);
      const verb = buf.subarray(0, 4).toString('latin1').toUpperCase();
      const server = verb === 'LHLO' ? this.lmtp : this.smtp;
      coalesceWrites(socket);
      const write = socket.write;
      socket.write = ((chunk: unknown, ...rest: unknown[]) => {
        socket.write = write;
        if (typeof chunk === 'string' && chunk.startsWith('220 ')) {
          socket.unshift(buf);
          return true;
        }
        return (write as (...a: unknown[]) => boolean).call(socket, chunk, ...rest);
      }) as typeof socket.write;
      server.connect(socket, {});
    };
    socket.on('data', onData);
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const source = this.acl.match(session.remoteAddress);
    if (!source?.alwaysAllowRelaying) {
      cb(reply(554, `5.7.1 ${session.remoteAddress} is not allowed to relay`));
      return;
    }
    this.sources.set(session.id, source);
    cb();
  }

  /** Back-pressure and shutdown are answered at MAIL, before the client sends a body. */
  private refusal(): string | null {
    if (this.draining) return 'engine shutting down';
    const disk = this.deps.spool.diskRefusal();
    if (disk) return disk;
    if (this.deps.scheduler.queuedRecipients() >= this.deps.settings.maxQueuedRecipients)
      return 'engine saturated';
    // Accounting rows waiting for a locked or full store: take no new mail until they drain.
    if (this.deps.acct?.backlogged) return 'accounting backlog';
    return null;
  }

  private onMailFrom(_session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const why = this.refusal();
    if (why) {
      this.tempRejected++;
      cb(
        why === 'engine shutting down'
          ? reply(421, `4.3.2 ${why}, try again later`)
          : reply(452, `4.3.1 ${why}`),
      );
      return;
    }
    cb();
  }

  private onRcptTo(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    if (session.envelope.rcptTo.length >= this.deps.settings.maxIntakeRecipients) {
      cb(reply(452, '4.5.3 too many recipients in this transaction'));
      return;
    }
    cb();
  }

  private onData(
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    cb: (err?: Error | null, message?: string | (string | Error)[]) => void,
  ): void {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => {
      if (!stream.sizeExceeded) chunks.push(c);
    });
    stream.on('end', () => {
      if (stream.sizeExceeded) {
        cb(reply(552, `5.3.4 message exceeds ${this.deps.settings.maxMessageSize} bytes`));
        return;
      }
      this.inFlightData++;
      this.spoolMessage(Buffer.concat(chunks), session)
        .then((entry) => {
          cb(null, this.successReplies(entry, session));
          if (FAULTS) setImmediate(faultPoint, 'intake-250');
        })
        .catch((err: unknown) => {
          this.tempRejected++;
          this.log.error('message not spooled; client keeps it', { error: errorMessage(err) });
          cb(reply(451, '4.3.0 cannot spool the message now, try again later'));
        })
        .finally(() => this.inFlightData--);
    });
  }

  private successReplies(entry: SpoolEntry, session: SMTPServerSession): string | string[] {
    const text = `2.0.0 Ok: queued as ${entry.id}`;
    const lmtp = (session as { openingCommand?: string }).openingCommand === 'LHLO';
    return lmtp ? entry.recipients.map((r) => `2.0.0 <${r.rcpt}> Ok: queued as ${entry.id}`) : text;
  }

  private async spoolMessage(raw: Buffer, session: SMTPServerSession): Promise<SpoolEntry> {
    const source = this.sources.get(session.id) ?? this.acl.match(session.remoteAddress);
    const facts = processHeaders(raw, {
      processXVirtualMta: source?.processXVirtualMta ?? false,
      jobidHeader: source ? (source.jobidHeader ?? 'X-Job') : null,
    });
    const env = session.envelope as typeof session.envelope & DsnEnvelope;
    const mailFrom = session.envelope.mailFrom;
    const rcpts = session.envelope.rcptTo as unknown as DsnAddress[];
    const lmtp = (session as { openingCommand?: string }).openingCommand === 'LHLO';
    const spool = this.deps.spool;
    const id = spool.newId();
    const trace = receivedHeader({
      helo: session.hostNameAppearsAs ?? '',
      ip: normalizeIp(session.remoteAddress),
      hostName: this.deps.config.global.hostName,
      protocol: lmtp ? 'LMTP' : 'ESMTP',
      id,
      rcpt: rcpts.length === 1 ? rcpts[0]!.address : null,
      at: new Date(),
    });
    const entry = await spool.accept(
      {
        sender: mailFrom ? mailFrom.address : '',
        envId: env.dsn?.envid ?? null,
        ret: env.dsn?.ret === 'FULL' || env.dsn?.ret === 'HDRS' ? env.dsn.ret : null,
        jobId: facts.jobId,
        vmtaRequest: facts.vmtaRequest,
        postfixQueueId: facts.postfixQueueId,
        messageId: facts.messageId,
        sourceIp: normalizeIp(session.remoteAddress),
        source: { srcType: lmtp ? 'lmtp' : 'smtp', helo: session.hostNameAppearsAs ?? null },
        recipients: rcpts.map((r) => ({
          rcpt: r.address,
          orcpt: r.dsn?.orcpt ?? null,
          notify: r.dsn?.notify ? r.dsn.notify.join(',') : null,
        })),
      },
      Buffer.concat([Buffer.from(trace), facts.body]),
      id,
    );
    this.accepted++;
    this.acceptedRcpts += entry.recipients.length;
    this.deps.scheduler.submit(entry);
    return entry;
  }

  /**
   * One `r` row per recipient, written by the spool the moment the message is durable, inside the
   * commit round: the accounting cursor may pass the message's journal record only after that.
   */
  private writeReceived(entry: SpoolEntry): void {
    const acct = this.deps.acct;
    if (!acct) return;
    try {
      for (const row of receivedRows(entry, entry.intakeSource)) acct.write(row);
    } catch (err) {
      this.log.warn('accounting row not written', { id: entry.id, error: errorMessage(err) });
    }
  }

  status(): IntakeStatus {
    const { host, port } = this.deps.config.global.smtpListener;
    return {
      listener: `${host}:${port}`,
      protocol: this.deps.config.global.smtpListenerProtocol,
      sessions: this.lmtp.connections.size + this.smtp.connections.size,
      acceptedMessages: this.accepted,
      acceptedRecipients: this.acceptedRcpts,
      tempRejected: this.tempRejected,
      refusing: this.refusal(),
    };
  }

  /**
   * Stop accepting: close the listener, answer 421 to new transactions, wait up to `graceMs` for
   * messages being spooled, then drop the remaining connections (their clients retry the mail).
   */
  async close(graceMs: number): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((r) => (this.front ? this.front.close(() => r()) : r()));
    const deadline = Date.now() + graceMs;
    while (this.inFlightData > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const s of [this.lmtp, this.smtp]) {
      for (const conn of s.connections as Set<{ close(): void }>) conn.close();
    }
    await closed;
  }
}
