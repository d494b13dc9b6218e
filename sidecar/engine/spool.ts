/**
 * The engine's durable spool (issue 7 ★2). A message is written once to `msg/<hh>/<id>.eml`; its envelope
 * and recipient states live in the journal (spool-journal.ts). `accept()` resolves only when the body,
 * its directory entry and the journal record are all fsync'd; intake answers 250 after that. Sessions
 * share fsync rounds (group commit): while one round is in flight, new messages gather for the next.
 *
 * Crash reasoning: the journal `A` record may become durable before the body (both are synced in the
 * same round), but nothing is acknowledged until both are, and recovery drops an `A` whose body is
 * missing or short — such a message was never acknowledged. Outcomes (`U`) reach the kernel at once and
 * are fsync'd in the next round; a SIGKILL loses none of them, so only deliveries in flight repeat.
 */
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { errorMessage, FreightError } from '../common/errors.js';
import { createLogger, type Logger } from '../common/log.js';
import type { SpoolStatus } from './control-types.js';
import {
  bodyPathOf,
  decodeAdd,
  encodeAdd,
  encodeDsnDone,
  encodeRemove,
  encodeUpdate,
  type MessageDraft,
  SpoolEntry,
} from './spool-entry.js';
import { fsyncDir, SpoolJournal } from './spool-journal.js';
import type { RecipientUpdate, SpooledMessage, SpoolPort } from './types.js';

export interface SpoolOptions {
  dir: string;
  /** Extra wait before each group-commit round (ms); 0 = rounds run back to back. */
  commitDelayMs?: number;
  /** Free space below which `refusing` reports the disk as nearly full (bytes). */
  minFreeBytes?: number;
  /** Journal size after which it is compacted (bytes), at least twice the live state's. */
  compactMinBytes?: number;
  log?: Logger;
}

interface PendingWrite {
  entry: SpoolEntry;
  fd: number;
  path: string;
  resolve: (e: SpoolEntry) => void;
  reject: (err: Error) => void;
}

const HASH_DIRS = 256;
/** Messages per hash dir before the next one, so a commit round touches one or two directories. */
const RUN_PER_DIR = 64;

function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

export class Spool implements SpoolPort {
  readonly dir: string;
  readonly msgDir: string;
  private readonly log: Logger;
  private readonly commitDelayMs: number;
  private readonly minFreeBytes: number;
  private readonly compactMinBytes: number;
  private journal!: SpoolJournal;
  private readonly live = new Map<string, SpoolEntry>();
  private pending: PendingWrite[] = [];
  private committing = false;
  private compacting = false;
  private syncTimer: NodeJS.Timeout | null = null;
  private seq = 0;
  private free = Number.POSITIVE_INFINITY;
  private freeTimer: NodeJS.Timeout | null = null;
  /** Messages whose removal waits for a DSN: id → outstanding DSN jobs. */
  private readonly dsnPending = new Map<string, number>();
  private readonly removeAfterDsn = new Set<string>();
  private recoveredEntries: SpoolEntry[] = [];
  private closed = false;

  private constructor(opts: SpoolOptions) {
    this.dir = opts.dir;
    this.msgDir = join(opts.dir, 'msg');
    this.log = opts.log ?? createLogger('engine/spool');
    this.commitDelayMs = opts.commitDelayMs ?? 0;
    this.minFreeBytes = opts.minFreeBytes ?? 0;
    this.compactMinBytes = opts.compactMinBytes ?? 64 * 1024 ** 2;
  }

  /** Open (creating if needed) and recover: replay the journal, drop unacknowledged and orphaned files. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    const spool = new Spool(opts);
    await spool.recover();
    await spool.refreshFree();
    spool.freeTimer = setInterval(() => void spool.refreshFree(), 2000);
    spool.freeTimer.unref();
    return spool;
  }

  private async recover(): Promise<void> {
    for (let i = 0; i < HASH_DIRS; i++) {
      fs.mkdirSync(join(this.msgDir, i.toString(16).padStart(2, '0')), { recursive: true });
    }
    await fsyncDir(this.msgDir);
    // A records replayed from segments (not snapshots) may be unacknowledged: their bodies are checked.
    const unverified = new Set<string>();
    this.journal = await SpoolJournal.open(join(this.dir, 'journal'), this.log, (rec) =>
      this.replay(rec, unverified),
    );
    const onDisk = new Set<string>();
    let orphans = 0;
    for (const hh of fs.readdirSync(this.msgDir)) {
      for (const name of fs.readdirSync(join(this.msgDir, hh))) {
        const id = name.endsWith('.eml') ? name.slice(0, -4) : name;
        if (this.live.has(id)) onDisk.add(id);
        else {
          fs.rmSync(join(this.msgDir, hh, name), { force: true });
          orphans++;
        }
      }
    }
    let dropped = 0;
    for (const [id, entry] of this.live) {
      let ok = onDisk.has(id);
      if (ok && unverified.has(id)) ok = fs.statSync(entry.bodyPath).size === entry.size;
      if (!ok) {
        this.log.warn('dropping a journaled message whose body is missing (never acknowledged)', { id });
        this.live.delete(id);
        fs.rmSync(entry.bodyPath, { force: true });
        this.journal.append(encodeRemove(id));
        dropped++;
      }
    }
    const final: SpoolEntry[] = [];
    for (const entry of this.live.values()) {
      if (entry.final) final.push(entry);
      else this.recoveredEntries.push(entry);
    }
    this.recoveredFinal = final;
    await this.journal.sync();
    this.log.info('spool recovered', {
      messages: this.live.size,
      queued: this.recoveredEntries.length,
      dropped,
      orphans,
    });
  }

  /** Final messages found at recovery: removed once the DSN listener is attached (they may owe a DSN). */
  private recoveredFinal: SpoolEntry[] = [];

  private replay(rec: Record<string, unknown>, unverified: Set<string>): void {
    const id = rec.id as string;
    switch (rec.t) {
      case 'A':
        this.live.set(id, decodeAdd(this.msgDir, rec));
        unverified.add(id);
        break;
      case 'U': {
        const r = this.live.get(id)?.recipients[rec.i as number];
        if (!r) break;
        r.state = rec.s as SpoolEntry['recipients'][number]['state'];
        r.attempts = rec.a as number;
        r.nextAttemptAt = rec.n as number;
        r.lastDiag = (rec.d as string | null) ?? null;
        break;
      }
      case 'D': {
        const entry = this.live.get(id);
        if (entry)
          for (const i of rec.i as number[]) if (entry.recipients[i]) entry.recipients[i]!.dsnSpooled = true;
        break;
      }
      case 'R':
        this.live.delete(id);
        unverified.delete(id);
        break;
    }
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

  /** A fresh message id: `<hash-dir><time><seq>`, consecutive ids sharing a hash dir. */
  newId(): string {
    const seq = this.seq++;
    const hh = (((seq / RUN_PER_DIR) % HASH_DIRS) | 0).toString(16).padStart(2, '0');
    return `${hh}${Date.now().toString(36)}${(seq % 1_679_616).toString(36).padStart(4, '0')}`;
  }

  /**
   * Spool a message: write the body, then resolve once a commit round has made it durable. Rejects
   * with SPOOL_WRITE (nothing is kept) if the disk refuses; intake answers 4xx then.
   */
  accept(draft: MessageDraft, body: Buffer, presetId?: string): Promise<SpoolEntry> {
    if (this.closed) return Promise.reject(new FreightError('SPOOL_CLOSED', 'spool is closed'));
    let id = presetId ?? this.newId();
    let path = bodyPathOf(this.msgDir, id);
    let fd: number;
    try {
      try {
        fd = fs.openSync(path, 'wx');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        id = this.newId();
        path = bodyPathOf(this.msgDir, id);
        fd = fs.openSync(path, 'wx');
      }
    } catch (err) {
      return Promise.reject(new FreightError('SPOOL_WRITE', `cannot create ${path}: ${errorMessage(err)}`));
    }
    try {
      let off = 0;
      while (off < body.length) off += fs.writeSync(fd, body, off);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(path, { force: true });
      return Promise.reject(new FreightError('SPOOL_WRITE', `cannot write ${path}: ${errorMessage(err)}`));
    }
    const entry = new SpoolEntry(this.msgDir, id, draft, Date.now(), body.length);
    return new Promise((resolve, reject) => {
      this.pending.push({ entry, fd, path, resolve, reject });
      void this.commit();
    });
  }

  /** Group commit: one round fsyncs every body written since the last round, their dirs and the journal. */
  private async commit(): Promise<void> {
    if (this.committing) return;
    this.committing = true;
    try {
      while (this.pending.length > 0 || this.journal.dirty) {
        if (this.commitDelayMs > 0) await new Promise((r) => setTimeout(r, this.commitDelayMs));
        const batch = this.pending;
        this.pending = [];
        for (const p of batch) {
          // In the live map from the moment its A record exists, so a concurrent snapshot includes it.
          this.live.set(p.entry.id, p.entry);
          this.journal.append(encodeAdd(p.entry));
        }
        const dirs = [...new Set(batch.map((p) => dirname(p.path)))];
        const [bodies, dirSync, journalSync] = await Promise.all([
          Promise.allSettled(batch.map((p) => fsyncFd(p.fd))),
          Promise.allSettled(dirs.map((d) => fsyncDir(d))),
          this.journal.sync().then(
            () => null,
            (err: unknown) => err,
          ),
        ]);
        const dirErr = dirSync.find((r) => r.status === 'rejected');
        batch.forEach((p, i) => {
          fs.closeSync(p.fd);
          const bodyErr =
            bodies[i]!.status === 'rejected' ? (bodies[i] as PromiseRejectedResult).reason : null;
          const err = bodyErr ?? (dirErr ? dirErr.reason : null) ?? journalSync;
          if (err === null) {
            p.resolve(p.entry);
            return;
          }
          this.log.error('spool fsync failed; message refused', { id: p.entry.id, error: errorMessage(err) });
          this.live.delete(p.entry.id);
          this.journal.append(encodeRemove(p.entry.id));
          fs.rmSync(p.path, { force: true });
          p.reject(new FreightError('SPOOL_WRITE', `spool fsync failed: ${errorMessage(err)}`));
        });
        if (!this.compacting && !this.journal.dirty && this.needsCompaction()) this.startCompaction();
      }
    } finally {
      this.committing = false;
    }
  }

  private needsCompaction(): boolean {
    const bytes = this.journal.bytesSinceSnapshot;
    return bytes > this.compactMinBytes && bytes > this.live.size * 600;
  }

  private startCompaction(): void {
    this.compacting = true;
    const seq = this.journal.roll();
    const live = this.live;
    async function* chunks(): AsyncIterable<string[]> {
      let lines: string[] = [];
      for (const entry of [...live.values()]) {
        // Removed since the roll: its R record is in the new segment anyway, skipping it is cheaper.
        if (!live.has(entry.id)) continue;
        lines.push(encodeAdd(entry));
        if (lines.length >= 2000) {
          yield lines;
          lines = [];
          await new Promise((r) => setImmediate(r));
        }
      }
      yield lines;
    }
    const started = Date.now();
    this.journal
      .writeSnapshot(seq, chunks())
      .then(() => this.log.info('spool journal compacted', { messages: live.size, ms: Date.now() - started }))
      .catch((err: unknown) =>
        this.log.error('spool journal compaction failed', { error: errorMessage(err) }),
      )
      .finally(() => {
        this.compacting = false;
      });
  }

  /** Outcomes reach the kernel now and are fsync'd within a few ms (batched). */
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
      this.journal.append(encodeUpdate(u));
    }
    this.scheduleSync();
  }

  /** A DSN for `msg` is being built: its removal waits until `dsnSpooled`. Call synchronously. */
  holdForDsn(msg: SpooledMessage): void {
    this.dsnPending.set(msg.id, (this.dsnPending.get(msg.id) ?? 0) + 1);
  }

  /** The DSN for these bounced recipients is durable in the DSN outbox (or was not possible). */
  dsnSpooled(entry: SpooledMessage, indexes: number[]): void {
    const live = this.live.get(entry.id);
    if (live) {
      for (const i of indexes) if (live.recipients[i]) live.recipients[i]!.dsnSpooled = true;
      this.journal.append(encodeDsnDone(entry.id, indexes));
      this.scheduleSync();
    }
    const left = (this.dsnPending.get(entry.id) ?? 1) - 1;
    if (left > 0) {
      this.dsnPending.set(entry.id, left);
      return;
    }
    this.dsnPending.delete(entry.id);
    if (this.removeAfterDsn.delete(entry.id) && live) this.remove(live);
  }

  private scheduleSync(): void {
    if (this.syncTimer || this.committing) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      void this.commit();
    }, 5);
  }

  openBody(msg: SpooledMessage): NodeJS.ReadableStream {
    // The default 64 KB read buffer per delivery is mostly waste for typical few-KB bodies.
    return fs.createReadStream(msg.bodyPath, {
      highWaterMark: Math.min(64 * 1024, Math.max(4096, msg.size + 1)),
    });
  }

  /** All recipients final: forget the message (after any DSN it owes is spooled). */
  remove(msg: SpooledMessage): void {
    if (!this.live.has(msg.id)) return;
    if (this.dsnPending.has(msg.id)) {
      this.removeAfterDsn.add(msg.id);
      return;
    }
    this.live.delete(msg.id);
    this.journal.append(encodeRemove(msg.id));
    this.scheduleSync();
    fs.unlink(msg.bodyPath, (err) => {
      if (err && err.code !== 'ENOENT')
        this.log.warn('cannot unlink spooled body', { id: msg.id, error: err.message });
    });
  }

  get(id: string): SpoolEntry | undefined {
    return this.live.get(id);
  }

  get messageCount(): number {
    return this.live.size;
  }

  /** Free bytes on the spool's filesystem (refreshed every 2 s). */
  get freeBytes(): number {
    return this.free;
  }

  /** Why intake should refuse new mail now, or null. */
  diskRefusal(): string | null {
    return this.free < this.minFreeBytes ? 'spool disk nearly full' : null;
  }

  async refreshFree(): Promise<void> {
    try {
      const st = await fs.promises.statfs(this.dir);
      this.free = st.bavail * st.bsize;
    } catch (err) {
      this.log.warn('statfs on the spool failed', { error: errorMessage(err) });
    }
  }

  status(): SpoolStatus {
    return {
      dir: this.dir,
      messages: this.live.size,
      freeBytes: this.free,
      minFreeBytes: this.minFreeBytes,
      journalBytes: this.journal.bytesSinceSnapshot,
    };
  }

  /** Finish in-flight commit rounds and make the journal durable. New accepts are refused. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.freeTimer) clearInterval(this.freeTimer);
    if (this.syncTimer) clearTimeout(this.syncTimer);
    while (this.committing || this.pending.length > 0) {
      if (!this.committing) await this.commit();
      else await new Promise((r) => setTimeout(r, 2));
    }
    this.journal.close();
  }
}
