/**
 * Sends failure DSNs through Postfix (its smtpd at `postfix-listener`), so Postfix's own queue, retries
 * and routing carry them. A DSN is first written durably to the outbox (dsn/outbox.ts) and only then is
 * the bounce marked done in the spool journal; the original message is kept until then. A crash
 * therefore never loses a DSN (at worst one is sent twice).
 *
 * Every failure on the way is logged, counted in `status()` and retried with backoff while the engine
 * runs: an original that cannot be read (after MAX_BODY_READS tries the DSN goes out without it, saying
 * so), an outbox write, an outbox file that cannot be read (after MAX_FILE_READS tries it is moved to
 * `dsn/corrupt/`, as is a file that is not an outbox file), and Postfix not taking the DSN. Only a
 * permanent refusal by Postfix (5xx) ends a DSN: logged and counted, since a DSN has nowhere to bounce to.
 */
import nodemailer from 'nodemailer';
import { errorMessage, isFreightError } from '../../common/errors.js';
import { createLogger, type Logger } from '../../common/log.js';
import type { HostPort } from '../../config/model.js';
import type { DsnStatus } from '../control/index.js';
import type { BouncedRecipient, DsnSink } from '../deliver/index.js';
import type { Spool, SpoolEntry } from '../spool/index.js';
import type { SpooledMessage } from '../types.js';
import { composeDsn, type DsnRecipient, headerBlock, statusFromDiag, wantsFailureDsn } from './compose.js';
import { DsnOutbox } from './outbox.js';

export interface DsnSenderOptions {
  spool: Spool;
  hostName: string;
  postmaster: string;
  postfixListener: HostPort;
  /** Largest original carried in full (bytes); larger ones get headers only. */
  maxBody: number;
  /** First retry delay after a failure (doubles up to 10 min). */
  retryMs?: number;
  log?: Logger;
}

/** Reads of the original before the DSN goes out without it. */
const MAX_BODY_READS = 5;
/** Reads of an outbox file before it is moved aside as unreadable. */
const MAX_FILE_READS = 5;
const MAX_RETRY_MS = 600_000;

interface OutboxItem {
  file: string;
  attempts: number;
  readFailures: number;
  dueAt: number;
}

/** A DSN not yet in the outbox. */
interface ComposeJob {
  msg: SpooledMessage;
  indexes: number[];
  rcpts: DsnRecipient[];
  failures: number;
  bodyFailures: number;
}

export class DsnSender implements DsnSink {
  private opts: DsnSenderOptions;
  private readonly outbox: DsnOutbox;
  private readonly log: Logger;
  private readonly queue: OutboxItem[] = [];
  private readonly composeTimers = new Set<NodeJS.Timeout>();
  private timer: NodeJS.Timeout | null = null;
  private sending = false;
  private closed = false;
  private readonly counts = { sent: 0, failed: 0, corrupt: 0, withoutOriginal: 0, errors: 0 };

  constructor(opts: DsnSenderOptions) {
    this.opts = opts;
    this.log = opts.log ?? createLogger('engine/dsn');
    this.outbox = new DsnOutbox(opts.spool.dir);
    for (const file of this.outbox.scan()) this.queue.push({ file, attempts: 0, readFailures: 0, dueAt: 0 });
  }

  setTarget(postfixListener: HostPort, hostName: string, postmaster: string): void {
    this.opts = { ...this.opts, postfixListener, hostName, postmaster };
  }

  status(): DsnStatus {
    return {
      outbox: this.queue.length,
      retrying: this.composeTimers.size + this.queue.filter((q) => q.attempts + q.readFailures > 0).length,
      ...this.counts,
    };
  }

  private retryDelay(failures: number): number {
    return Math.min(MAX_RETRY_MS, (this.opts.retryMs ?? 5000) * 2 ** Math.min(failures - 1, 16));
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
    void this.compose({ msg, indexes, rcpts, failures: 0, bodyFailures: 0 });
  }

  /** Read the original, write the DSN to the outbox, mark it spooled; a failure is retried later. */
  private async compose(job: ComposeJob): Promise<void> {
    if (this.closed) return;
    const { msg } = job;
    const original = await this.readOriginal(job);
    if (original === 'retry') return;
    const full = original !== null && msg.ret !== 'HDRS' && original.length <= this.opts.maxBody;
    const dsn = composeDsn({
      msg,
      rcpts: job.rcpts,
      hostName: this.opts.hostName,
      postmaster: this.opts.postmaster,
      original: original && (full ? original : headerBlock(original)),
      full,
      now: new Date(),
    });
    let file: string;
    try {
      file = await this.outbox.write(msg.id, msg.sender, dsn);
    } catch (err) {
      // Not marked spooled: the original stays in the spool (a restart composes the DSN again, too).
      this.retryCompose(job, 'the DSN cannot be written to the outbox', err);
      return;
    }
    this.queue.push({ file, attempts: 0, readFailures: 0, dueAt: 0 });
    this.opts.spool.dsnSpooled(msg, job.indexes);
    this.kick();
  }

  /** The original, or null once it could not be read MAX_BODY_READS times; 'retry' while trying. */
  private async readOriginal(job: ComposeJob): Promise<Buffer | null | 'retry'> {
    if (job.bodyFailures >= MAX_BODY_READS) return null;
    try {
      return await this.opts.spool.readBody(job.msg);
    } catch (err) {
      job.bodyFailures++;
      if (job.bodyFailures < MAX_BODY_READS) {
        this.retryCompose(job, 'the original cannot be read', err);
        return 'retry';
      }
      this.counts.withoutOriginal++;
      this.log.error('DSN sent without the original: it cannot be read from the spool', {
        id: job.msg.id,
        tries: job.bodyFailures,
        error: errorMessage(err),
      });
      return null;
    }
  }

  private retryCompose(job: ComposeJob, why: string, err: unknown): void {
    job.failures++;
    this.counts.errors++;
    const delay = this.retryDelay(job.failures);
    this.log.warn(`DSN not spooled: ${why}; will retry`, {
      id: job.msg.id,
      error: errorMessage(err),
      retryMs: delay,
    });
    const timer = setTimeout(() => {
      this.composeTimers.delete(timer);
      void this.compose(job);
    }, delay);
    timer.unref();
    this.composeTimers.add(timer);
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

  private forget(item: OutboxItem): void {
    const i = this.queue.indexOf(item);
    if (i >= 0) this.queue.splice(i, 1);
  }

  private later(item: OutboxItem, failures: number): number {
    const delay = this.retryDelay(failures);
    item.dueAt = Date.now() + delay;
    return delay;
  }

  private async sendOne(transport: nodemailer.Transporter, item: OutboxItem): Promise<void> {
    let msg: { to: string; raw: Buffer };
    try {
      msg = await this.outbox.read(item.file);
    } catch (err) {
      await this.unreadable(item, err);
      return;
    }
    try {
      await transport.sendMail({ envelope: { from: '', to: [msg.to] }, raw: msg.raw });
      this.counts.sent++;
      this.forget(item);
      this.outbox.remove(item.file);
      this.log.info('DSN handed to Postfix', { to: msg.to, file: item.file });
    } catch (err) {
      const code = (err as { responseCode?: number }).responseCode ?? 0;
      if (code >= 500) {
        this.counts.failed++;
        this.log.error('Postfix refused a DSN permanently; dropped', {
          to: msg.to,
          error: errorMessage(err),
        });
        this.forget(item);
        this.outbox.remove(item.file);
        return;
      }
      item.attempts++;
      this.counts.errors++;
      const retryMs = this.later(item, item.attempts);
      this.log.warn('DSN not handed to Postfix; will retry', {
        to: msg.to,
        error: errorMessage(err),
        retryMs,
      });
    }
  }

  /** An outbox file that cannot be read is retried, then moved aside; one that is not an outbox file at once. */
  private async unreadable(item: OutboxItem, err: unknown): Promise<void> {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      this.log.warn('DSN outbox file vanished (removed by hand?); nothing to send', { file: item.file });
      this.forget(item);
      return;
    }
    this.counts.errors++;
    item.readFailures++;
    const corrupt = isFreightError(err, 'DSN_OUTBOX_CORRUPT');
    if (!corrupt && item.readFailures < MAX_FILE_READS) {
      const retryMs = this.later(item, item.readFailures);
      this.log.warn('DSN outbox file cannot be read; will retry', {
        file: item.file,
        error: errorMessage(err),
        retryMs,
      });
      return;
    }
    try {
      const to = await this.outbox.moveAside(item.file);
      this.forget(item);
      this.counts.corrupt++;
      this.log.error('DSN outbox file moved aside: it cannot be sent', {
        file: to,
        error: errorMessage(err),
      });
    } catch (moveErr) {
      const retryMs = this.later(item, item.readFailures);
      this.log.error('DSN outbox file cannot be read or moved aside; will retry', {
        file: item.file,
        error: errorMessage(moveErr),
        retryMs,
      });
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const t of this.composeTimers) clearTimeout(t);
    this.composeTimers.clear();
  }
}
