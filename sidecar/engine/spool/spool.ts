/**
 * The engine's durable spool. A message body is appended to the current data segment
 * (segments.ts); its envelope and recipient states live in the journal (journal.ts).
 * `accept()` resolves only after a commit round has made both durable; intake answers 250 after that.
 * Sessions share rounds (group commit): while one round is in flight, new messages gather for the next.
 *
 * Crash reasoning: a round fsyncs the bodies first and only then appends and fsyncs their journal `A`
 * records, so a durable `A` always has a durable body; recovery still drops an `A` whose body lies
 * beyond its segment's end (an operator truncated it). Outcomes (`U`) reach the kernel at once and are
 * fsync'd with the next round (within a second); a SIGKILL loses none of them, so only deliveries in
 * flight repeat. A data segment is deleted only after the round that made its last message's removal durable.
 */
import { join } from 'node:path';
import type { AcctRecord } from '../../acct/record.js';
import { errorMessage, FreightError } from '../../common/errors.js';
import { createLogger, type Logger } from '../../common/log.js';
import type { SpoolStatus } from '../control/index.js';
import { FAULTS, faultPoint } from '../fault-inject.js';
import type { SpoolPort } from '../types.js';
import { SpoolAcctFeed } from './acct-feed.js';
import { BodyCache } from './body-cache.js';
import { type BodyMove, copySparseBodies, JournalCompaction } from './compact.js';
import { SpoolDiskSpace } from './disk.js';
import { encodeAdd, encodeMove, encodeRemove, type MessageDraft, SpoolEntry } from './entry.js';
import { SpoolRecords } from './records.js';
import { recoverSpool } from './recover.js';
import { errorOf, syncBodies, syncJournal } from './round-sync.js';
import { type BodyLocation, BodySegments } from './segments.js';

export interface SpoolOptions {
  dir: string;
  /**
   * Longest a group-commit round waits for more messages while other intake sessions could still add
   * one (ms); 0 = rounds run back to back.
   */
  commitDelayMs?: number;
  /** Free space below which `refusing` reports the disk as nearly full (bytes). */
  minFreeBytes?: number;
  /** Journal size after which it is compacted (bytes), at least twice the live state's. */
  compactMinBytes?: number;
  /** Data segment size before the next one is started (bytes). */
  segmentBytes?: number;
  /** Memory for bodies awaiting their first attempt (bytes). */
  bodyCacheBytes?: number;
  /**
   * The accounting store's cursor (acct_cursor; null: none yet). Given, recovery rebuilds the rows of
   * every numbered record above it (`takeMissingAcctRows`) and numbering continues past it.
   */
  acctCursor?: number | null;
  log?: Logger;
}

interface PendingWrite {
  entry: SpoolEntry;
  body: Buffer;
  resolve: (e: SpoolEntry) => void;
  reject: (err: Error) => void;
}

/** Sealed data segments older than this with under a quarter of their bytes live are compacted. */
const SEGMENT_COMPACT_AGE_MS = 10 * 60_000;
const SEGMENT_COMPACT_LIVE_SHARE = 0.25;
/** Longest an outcome record waits for its fsync when no intake round comes first. */
const OUTCOME_SYNC_MS = 1000;

export class Spool extends SpoolRecords implements SpoolPort {
  private readonly commitDelayMs: number;
  private readonly disk: SpoolDiskSpace;
  private readonly compaction: JournalCompaction;
  private pending: PendingWrite[] = [];
  private moves: BodyMove[] = [];
  private committing = false;
  private syncTimer: NodeJS.Timeout | null = null;
  private seq = 0;
  private segmentTimer: NodeJS.Timeout | null = null;
  private recoveredEntries: SpoolEntry[] = [];
  /** Final messages found at recovery: removed once the DSN listener is attached (they may owe a DSN). */
  private recoveredFinal: SpoolEntry[] = [];
  /** How many intake sessions could add a message to the round being gathered. */
  private writers: () => number = () => 1;
  /** Ends the current gathering wait early. */
  private gathered: (() => void) | null = null;
  /** Sees each message once it is durable, before `accept` resolves (intake writes its `r` rows). */
  private onDurable: (entry: SpoolEntry) => void = () => {};

  private constructor(opts: SpoolOptions) {
    const log = opts.log ?? createLogger('engine/spool');
    super(
      opts.dir,
      log,
      new BodyCache(opts.bodyCacheBytes ?? 16 * 1024 ** 2),
      new BodySegments({
        dir: join(opts.dir, 'data'),
        segmentBytes: opts.segmentBytes ?? 64 * 1024 ** 2,
        log,
      }),
      new SpoolAcctFeed(opts.acctCursor),
    );
    this.commitDelayMs = opts.commitDelayMs ?? 0;
    this.disk = new SpoolDiskSpace(opts.dir, opts.minFreeBytes ?? 0, this.log);
    this.compaction = new JournalCompaction(opts.compactMinBytes ?? 64 * 1024 ** 2);
  }

  /** Open (creating if needed) and recover: replay the journal, drop unacknowledged and orphaned bodies. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    const spool = new Spool(opts);
    await spool.recover();
    await spool.disk.start();
    // After whoever opened the spool has set the compaction gate (it runs on the next turn at the earliest).
    if (spool.journal.corruptFiles > 0) setTimeout(() => spool.maybeCompact(), 0).unref();
    spool.segmentTimer = setInterval(() => void spool.compactSegments(), 60_000);
    spool.segmentTimer.unref();
    return spool;
  }

  private async recover(): Promise<void> {
    const replay = this.acct.replay();
    const r = await recoverSpool(
      this.dir,
      this.segments,
      this.log,
      replay ? (rec, live) => replay.record(rec, live) : undefined,
    );
    this.journal = r.journal;
    this.live = r.live;
    this.acct.recovered(replay, r.live);
    this.recoveredEntries = r.queued;
    this.recoveredFinal = r.final;
  }

  /**
   * Messages with queued recipients found at start-up, for the scheduler. Call once. `owedDsn` sees
   * every bounce whose DSN was not spooled before the crash (it must call `holdForDsn` at once); then
   * messages that are already final are removed (after those DSNs).
   */
  takeRecovered(owedDsn: (entry: SpoolEntry, rcptIndexes: number[]) => void): SpoolEntry[] {
    const out = this.recoveredEntries;
    this.recoveredEntries = [];
    for (const entry of [...out, ...this.recoveredFinal]) {
      const owed: number[] = [];
      entry.recipients.forEach((r, i) => {
        if (r.state === 'bounced' && !r.dsnSpooled) owed.push(i);
      });
      if (owed.length > 0) owedDsn(entry, owed);
    }
    for (const entry of this.recoveredFinal) this.remove(entry);
    this.recoveredFinal = [];
    return out;
  }

  /** Rows of journal records the accounting store did not commit before the last stop. Call once. */
  takeMissingAcctRows(): AcctRecord[] {
    return this.acct.takeMissing();
  }

  /**
   * The accounting number up to which every record has had its rows handed to the writer; its records
   * are in the kernel before the store may commit the cursor past them.
   */
  acctPosition(): number {
    this.journal.flush();
    return this.acct.position();
  }

  /** `fn` sees each message as it becomes durable (before `accept` resolves). */
  setDurableListener(fn: (entry: SpoolEntry) => void): void {
    this.onDurable = fn;
  }

  /** Journal compaction waits until `fn` answers true (it flushes the accounting rows). */
  setCompactionGate(fn: () => boolean): void {
    this.acct.caughtUp = fn;
  }

  /** A fresh message id: time and a sequence number, base 36. */
  newId(): string {
    const seq = this.seq++;
    return `${Date.now().toString(36)}${(seq % 1_679_616).toString(36).padStart(4, '0')}`;
  }

  /**
   * Spool a message: write the body, then resolve once a commit round has made it durable. Rejects
   * with SPOOL_WRITE (nothing is kept) if the disk refuses; intake answers 4xx then.
   */
  accept(draft: MessageDraft, body: Buffer, presetId?: string): Promise<SpoolEntry> {
    if (this.closed) return Promise.reject(new FreightError('SPOOL_CLOSED', 'spool is closed'));
    let loc: BodyLocation;
    try {
      loc = this.segments.append(body);
    } catch (err) {
      return Promise.reject(err);
    }
    if (FAULTS) {
      try {
        faultPoint('body-write');
      } catch (err) {
        this.segments.release(loc, body.length);
        return Promise.reject(err);
      }
    }
    const entry = new SpoolEntry(presetId ?? this.newId(), draft, Date.now(), body.length, loc.seg, loc.off);
    return new Promise((resolve, reject) => {
      this.pending.push({ entry, body, resolve, reject });
      if (this.gathered && this.pending.length >= this.writers()) this.gathered();
      void this.commit();
    });
  }

  /** Tell the spool how many intake sessions are open (they are who can join a commit round). */
  setWriters(count: () => number): void {
    this.writers = count;
  }

  /**
   * Each round costs a gathered write and two fsyncs whatever its size (the engine CPU per message of
   * `bench/engine-inject.bench.ts --hold` measures it), so
   * a round waits up to `commitDelayMs` for the other open intake sessions' messages — but not once
   * every session has one pending, and not at all with a single session (it would only add latency).
   */
  private gather(): Promise<void> {
    if (this.commitDelayMs <= 0 || this.closed || this.pending.length >= this.writers())
      return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.gathered?.(), this.commitDelayMs);
      this.gathered = () => {
        clearTimeout(timer);
        this.gathered = null;
        resolve();
      };
    });
  }

  /** Group commit: bodies fsync'd, then their `A` records (with every other record) appended and fsync'd. */
  private async commit(flushOutcomes = false): Promise<void> {
    if (this.committing) return;
    this.committing = true;
    const due = () =>
      this.pending.length > 0 ||
      this.moves.length > 0 ||
      (flushOutcomes && (this.released.length > 0 || this.journal.dirty));
    try {
      while (due()) {
        await this.gather();
        const batch = this.pending;
        const moves = this.moves;
        this.pending = [];
        this.moves = [];
        const dataErr =
          batch.length > 0 || moves.length > 0 ? await errorOf(syncBodies(this.segments)) : null;
        if (dataErr === null) {
          const acct = this.acct;
          if (batch.length > 0) acct.hold ??= acct.seq;
          for (const p of batch) {
            // In the live map from the moment its A record exists, so a concurrent snapshot includes it.
            this.live.set(p.entry.id, p.entry);
            this.journal.append(encodeAdd(p.entry, ++acct.seq));
          }
          for (const m of moves)
            if (this.live.get(m.entry.id) === m.entry)
              this.journal.append(encodeMove(m.entry.id, m.to.seg, m.to.off));
        }
        const released = this.released;
        this.released = [];
        const journalErr = await errorOf(syncJournal(this.journal, batch.length > 0 && dataErr === null));
        for (const [loc, size] of released) this.segments.release(loc, size);
        const err = dataErr ?? journalErr;
        for (const p of batch) this.settle(p, err);
        // Every message of the round has its `r` rows written (or was refused): the hold can go.
        this.acct.hold = null;
        for (const m of moves) this.applyMove(m, err);
        this.maybeCompact();
      }
    } finally {
      this.committing = false;
    }
    if (this.journal.dirty || this.released.length > 0) this.scheduleSync();
  }

  private settle(p: PendingWrite, err: unknown): void {
    const { entry } = p;
    if (err === null) {
      this.cache.put(entry.id, p.body);
      this.onDurable(entry);
      p.resolve(entry);
      return;
    }
    this.log.error('spool fsync failed; message refused', { id: entry.id, error: errorMessage(err) });
    if (this.live.delete(entry.id)) this.journal.append(encodeRemove(entry.id, true));
    this.segments.release({ seg: entry.seg, off: entry.off }, entry.size);
    p.reject(new FreightError('SPOOL_WRITE', `spool fsync failed: ${errorMessage(err)}`));
  }

  private applyMove(m: BodyMove, err: unknown): void {
    if (err !== null || this.live.get(m.entry.id) !== m.entry) {
      this.segments.release(m.to, m.entry.size);
      return;
    }
    m.entry.seg = m.to.seg;
    m.entry.off = m.to.off;
    this.segments.release(m.from, m.entry.size);
  }

  private maybeCompact(): void {
    this.compaction.maybeRun(this.journal, this.live, this.acct.caughtUp, this.log);
  }

  /** Copy the stragglers out of mostly dead data segments (runs every minute). */
  async compactSegments(minAgeMs = SEGMENT_COMPACT_AGE_MS): Promise<number> {
    if (this.closed) return 0;
    // Removals waiting for their fsync still count as live in their segments: settle them first.
    await this.commit(true);
    const sparse = this.segments.sparse(Date.now(), minAgeMs, SEGMENT_COMPACT_LIVE_SHARE);
    if (sparse.length === 0) return 0;
    const moved = await copySparseBodies(
      sparse,
      this.live,
      this.segments,
      (m) => this.moves.push(m),
      this.log,
    );
    if (moved > 0) {
      this.log.info('spool data segments compacted', { segments: sparse.length, moved });
      await this.commit(true);
    }
    return moved;
  }

  /**
   * Outcome records are in the kernel already (a SIGKILL loses none); their fsync rides on the next
   * intake round, or on this timer when intake is idle. Losing the last second of outcomes to a power
   * cut means those deliveries happen again, which at-least-once allows; an fsync per outcome would
   * cost more CPU than the delivery itself.
   */
  protected scheduleSync(): void {
    if (this.syncTimer || this.committing) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      void this.commit(true);
    }, OUTCOME_SYNC_MS);
    this.syncTimer.unref();
  }

  /** Free bytes on the spool's filesystem (refreshed every 2 s). */
  get freeBytes(): number {
    return this.disk.freeBytes;
  }

  /** Why intake should refuse new mail now, or null. */
  diskRefusal(): string | null {
    return this.disk.refusal();
  }

  status(): SpoolStatus {
    return {
      dir: this.dir,
      messages: this.live.size,
      freeBytes: this.disk.freeBytes,
      minFreeBytes: this.disk.minFreeBytes,
      journalBytes: this.journal.bytesSinceSnapshot,
      dataSegments: this.segments.count,
      dataBytes: this.segments.bytes,
      bodyCacheBytes: this.cache.size,
    };
  }

  /** Finish in-flight commit rounds and make the journal durable. New accepts are refused. */
  async close(): Promise<void> {
    this.closed = true;
    this.gathered?.();
    this.disk.stop();
    if (this.segmentTimer) clearInterval(this.segmentTimer);
    if (this.syncTimer) clearTimeout(this.syncTimer);
    while (this.committing || this.pending.length > 0 || this.released.length > 0 || this.journal.dirty) {
      if (!this.committing) await this.commit(true);
      else await new Promise((r) => setTimeout(r, 2));
    }
    this.journal.close();
    this.segments.close();
  }
}
