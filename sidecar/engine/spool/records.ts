/**
 * The spool's live messages and the records that change them once they are spooled: recipient
 * outcomes (`U`), DSNs made durable (`D`), removals (`R`); and reading a message's bytes back. Each
 * record reaches the kernel at once; the spool's commit rounds make it durable.
 */
import type { Readable } from 'node:stream';
import { FreightError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { RecipientUpdate, SpooledMessage } from '../types.js';
import type { SpoolAcctFeed } from './acct-feed.js';
import type { BodyCache } from './body-cache.js';
import { openEntryBody, readEntryBody, unlinkLegacyBody } from './body-read.js';
import { DsnHolds } from './dsn-holds.js';
import { encodeDsnDone, encodeRemove, encodeUpdate, LEGACY_BODY, type SpoolEntry } from './entry.js';
import type { SpoolJournal } from './journal.js';
import type { BodyLocation, BodySegments } from './segments.js';

export abstract class SpoolRecords {
  protected journal!: SpoolJournal;
  protected live = new Map<string, SpoolEntry>();
  /** Bodies of removed messages, released once their `R` records are durable. */
  protected released: Array<[BodyLocation, number]> = [];
  protected closed = false;
  private readonly dsnHolds = new DsnHolds();

  constructor(
    readonly dir: string,
    protected readonly log: Logger,
    protected readonly cache: BodyCache,
    protected readonly segments: BodySegments,
    protected readonly acct: SpoolAcctFeed,
  ) {}

  /** The records appended since the last round are to be fsync'd soon. */
  protected abstract scheduleSync(): void;

  /** Outcomes reach the kernel now and are fsync'd within a second (batched). */
  update(updates: RecipientUpdate[]): void {
    for (const u of updates) {
      const entry = this.live.get(u.messageId);
      const r = entry?.recipients[u.rcptIndex];
      if (!entry || !r) {
        this.log.warn('update for an unknown message or recipient ignored', {
          id: u.messageId,
          rcpt: u.rcptIndex,
        });
        continue;
      }
      r.state = u.state;
      r.attempts = u.attempts;
      r.nextAttemptAt = u.nextAttemptAt;
      r.lastDiag = u.lastDiag;
      // The outcome's row is already with the writer, so the number can count it at once.
      this.journal.append(encodeUpdate(u, u.acct ? ++this.acct.seq : undefined));
    }
    this.scheduleSync();
  }

  /** A DSN for `msg` is being built: its removal waits until `dsnSpooled`. Call synchronously. */
  holdForDsn(msg: SpooledMessage): void {
    this.dsnHolds.hold(msg.id);
  }

  /** The DSN for these bounced recipients is durable in the DSN outbox (or was not possible). */
  dsnSpooled(entry: SpooledMessage, indexes: number[]): void {
    const live = this.live.get(entry.id);
    if (live) {
      for (const i of indexes) if (live.recipients[i]) live.recipients[i]!.dsnSpooled = true;
      this.journal.append(encodeDsnDone(entry.id, indexes));
      this.scheduleSync();
    }
    if (this.dsnHolds.release(entry.id) && live) this.remove(live);
  }

  /** The whole message: from memory right after intake, else from its data segment. */
  readBody(msg: SpooledMessage): Promise<Buffer> {
    const cached = this.cache.get(msg.id);
    if (cached) return Promise.resolve(cached);
    const entry = this.live.get(msg.id);
    if (!entry) return Promise.reject(new FreightError('SPOOL_READ', `message ${msg.id} is not spooled`));
    return readEntryBody(this.dir, this.segments, entry);
  }

  openBody(msg: SpooledMessage): Readable {
    const entry = this.live.get(msg.id);
    if (!entry) throw new FreightError('SPOOL_READ', `message ${msg.id} is not spooled`);
    return openEntryBody(this.dir, this.segments, entry);
  }

  /** All recipients final: forget the message (after any DSN it owes is spooled). */
  remove(msg: SpooledMessage): void {
    const entry = this.live.get(msg.id);
    if (!entry) return;
    if (this.dsnHolds.deferRemoval(msg.id)) return;
    this.live.delete(msg.id);
    this.cache.delete(msg.id);
    this.journal.append(encodeRemove(msg.id));
    this.scheduleSync();
    if (entry.seg !== LEGACY_BODY) {
      this.released.push([{ seg: entry.seg, off: entry.off }, entry.size]);
      return;
    }
    unlinkLegacyBody(this.dir, entry, this.log);
  }

  get(id: string): SpoolEntry | undefined {
    return this.live.get(id);
  }

  get messageCount(): number {
    return this.live.size;
  }
}
