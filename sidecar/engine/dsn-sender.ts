/**
 * Sends failure DSNs through Postfix (its smtpd at `postfix-listener`), so Postfix's own queue, retries
 * and routing carry them. A DSN is first written durably to the outbox `<spool>/dsn/` and only then is
 * the bounce marked done in the spool journal; the original message is kept until then. A crash
 * therefore never loses a DSN (at worst one is sent twice). The outbox is retried until Postfix takes
 * each file (250), or refuses it permanently (5xx: logged, dropped — a DSN has nowhere to bounce to).
 */
import fs from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { errorMessage } from '../common/errors.js';
import { createLogger, type Logger } from '../common/log.js';
import type { HostPort } from '../config/model.js';
import { composeDsn, type DsnRecipient, headerBlock, statusFromDiag, wantsFailureDsn } from './dsn.js';
import type { BouncedRecipient, DsnSink } from './outcome.js';
import type { Spool } from './spool.js';
import type { SpoolEntry } from './spool-entry.js';
import { spoolFsync } from './spool-fsync.js';
import type { SpooledMessage } from './types.js';

export interface DsnSenderOptions {
  spool: Spool;
  hostName: string;
  postmaster: string;
  postfixListener: HostPort;
  /** Largest original carried in full (bytes); larger ones get headers only. */
  maxBody: number;
  /** First retry delay after a temporary failure (doubles up to 10 min). */
  retryMs?: number;
  log?: Logger;
}

interface OutboxItem {
  file: string;
  attempts: number;
  dueAt: number;
}

/** First line of an outbox file: the envelope recipient; the DSN message follows. */
const ENVELOPE_PREFIX = 'X-Freight-Envelope-To: ';

export class DsnSender implements DsnSink {
  private opts: DsnSenderOptions;
  private readonly outbox: string;
  private readonly log: Logger;
  private readonly queue: OutboxItem[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sending = false;
  private closed = false;
  private seq = 0;
  sent = 0;

  constructor(opts: DsnSenderOptions) {
    this.opts = opts;
    this.outbox = join(opts.spool.dir, 'dsn');
    this.log = opts.log ?? createLogger('engine/dsn');
    fs.mkdirSync(this.outbox, { recursive: true });
    for (const name of fs.readdirSync(this.outbox)) {
      if (name.endsWith('.tmp')) fs.rmSync(join(this.outbox, name), { force: true });
      else if (name.endsWith('.eml'))
        this.queue.push({ file: join(this.outbox, name), attempts: 0, dueAt: 0 });
    }
  }

  setTarget(postfixListener: HostPort, hostName: string, postmaster: string): void {
    this.opts = { ...this.opts, postfixListener, hostName, postmaster };
  }

  get pending(): number {
    return this.queue.length;
  }

  /** DsnSink: the delivery half reports final failures of one attempt. */
  bounced(msg: SpooledMessage, rcpts: BouncedRecipient[]): void {
    this.build(
      msg,
      rcpts.map((r) => r.index),
      rcpts.map((r) => ({ rcpt: r.rcpt, status: r.status, diag: r.diag, mta: r.mta })),
    );
  }

  /** Recovery: bounces journaled before a crash whose DSN was not yet spooled. */
  owed(entry: SpoolEntry, indexes: number[]): void {
    this.build(
      entry,
      indexes,
      indexes.map((i) => {
        const r = entry.recipients[i]!;
        return {
          rcpt: r.rcpt,
          status: statusFromDiag(r.lastDiag),
          diag: r.lastDiag ?? 'delivery failed',
          mta: null,
        };
      }),
    );
  }

  private build(
    msg: SpooledMessage,
    indexes: number[],
    info: { rcpt: string; status: string; diag: string; mta: string | null }[],
  ): void {
    const rcpts: DsnRecipient[] = [];
    indexes.forEach((idx, k) => {
      const r = msg.recipients[idx];
      if (r && wantsFailureDsn(msg.sender, r.notify)) rcpts.push({ ...info[k]!, orcpt: r.orcpt });
    });
    const { spool } = this.opts;
    spool.holdForDsn(msg);
    if (rcpts.length === 0) {
      spool.dsnSpooled(msg, indexes);
      return;
    }
    this.write(msg, rcpts)
      .then(() => {
        spool.dsnSpooled(msg, indexes);
        this.kick();
      })
      .catch((err: unknown) => {
        // Not marked done: the original stays in the spool and the next start composes the DSN again.
        this.log.error('DSN not spooled', { id: msg.id, error: errorMessage(err) });
      });
  }

  private async write(msg: SpooledMessage, rcpts: DsnRecipient[]): Promise<void> {
    const raw = await this.opts.spool.readBody(msg).catch(() => Buffer.alloc(0));
    const full = msg.ret !== 'HDRS' && raw.length <= this.opts.maxBody;
    const dsn = composeDsn({
      msg,
      rcpts,
      hostName: this.opts.hostName,
      postmaster: this.opts.postmaster,
      original: full ? raw : headerBlock(raw),
      full,
      now: new Date(),
    });
    const name = `${msg.id}-${Date.now().toString(36)}${(this.seq++).toString(36)}.eml`;
    const tmp = join(this.outbox, `${name}.tmp`);
    const fh = await fs.promises.open(tmp, 'w');
    try {
      await fh.write(`${ENVELOPE_PREFIX}${msg.sender}\r\n`);
      await fh.write(dsn);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, join(this.outbox, name));
    await spoolFsync.syncDir(this.outbox);
    this.queue.push({ file: join(this.outbox, name), attempts: 0, dueAt: 0 });
  }

  /** Start sending the outbox (also called at start-up for files left from before). */
  kick(): void {
    if (this.closed || this.sending) return;
    void this.drain();
  }

  private async drain(): Promise<void> {
    this.sending = true;
    const transport = nodemailer.createTransport({
      host: this.opts.postfixListener.host,
      port: this.opts.postfixListener.port,
      secure: false,
      ignoreTLS: true,
      name: this.opts.hostName,
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      socketTimeout: 60_000,
    });
    try {
      for (;;) {
        const now = Date.now();
        const item = this.queue.find((q) => q.dueAt <= now);
        if (!item || this.closed) break;
        await this.sendOne(transport, item);
      }
    } finally {
      transport.close();
      this.sending = false;
    }
    const next = Math.min(...this.queue.map((q) => q.dueAt));
    if (!this.closed && Number.isFinite(next)) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => this.kick(), Math.max(50, next - Date.now()));
      this.timer.unref();
    }
  }

  private async sendOne(transport: nodemailer.Transporter, item: OutboxItem): Promise<void> {
    const drop = () => {
      this.queue.splice(this.queue.indexOf(item), 1);
      fs.rmSync(item.file, { force: true });
    };
    let raw: Buffer;
    try {
      raw = await fs.promises.readFile(item.file);
    } catch {
      this.queue.splice(this.queue.indexOf(item), 1);
      return;
    }
    const nl = raw.indexOf('\r\n');
    const first = raw.subarray(0, nl).toString('utf8');
    if (!first.startsWith(ENVELOPE_PREFIX)) {
      this.log.error('malformed DSN outbox file dropped', { file: item.file });
      drop();
      return;
    }
    const to = first.slice(ENVELOPE_PREFIX.length);
    try {
      await transport.sendMail({ envelope: { from: '', to: [to] }, raw: raw.subarray(nl + 2) });
      this.sent++;
      drop();
      this.log.info('DSN handed to Postfix', { to, file: item.file });
    } catch (err) {
      const code = (err as { responseCode?: number }).responseCode ?? 0;
      if (code >= 500) {
        this.log.error('Postfix refused a DSN permanently; dropped', { to, error: errorMessage(err) });
        drop();
        return;
      }
      item.attempts++;
      const delay = Math.min(600_000, (this.opts.retryMs ?? 5000) * 2 ** Math.min(item.attempts - 1, 8));
      item.dueAt = Date.now() + delay;
      this.log.warn('DSN not handed to Postfix; will retry', {
        to,
        error: errorMessage(err),
        retryMs: delay,
      });
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
