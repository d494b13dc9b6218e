/**
 * The spool's append-only journal: one JSON object per line (`A` message added, `U` recipient outcome,
 * `D` DSN spooled, `R` message removed). Every record carries absolute state, so replaying a record twice
 * is harmless — that is what lets compaction run without stopping intake.
 *
 * Files: `seg-N.log` segments, and `snap-N.log`, a snapshot of every live message taken when segment N
 * was started. Recovery replays the newest complete snapshot, then segments N, N+1, … . Lines are
 * written to the kernel at once (a SIGKILL loses nothing written) and fsync'd in group-commit rounds.
 */
import fs from 'node:fs';
import { basename, join } from 'node:path';
import { FreightError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { spoolFsync } from './fsync.js';
import { replayJournalFile } from './journal-replay.js';

const pad = (n: number) => String(n).padStart(8, '0');
const segName = (n: number) => `seg-${pad(n)}.log`;
const snapName = (n: number) => `snap-${pad(n)}.log`;

export class SpoolJournal {
  readonly dir: string;
  private fd = -1;
  private seq = 0;
  private buffer: string[] = [];
  private flushQueued = false;
  /** Bytes written to segments since the last snapshot (compaction trigger). */
  private segmentBytes = 0;
  private unsynced = false;
  /** A segment was created since the directory was last fsync'd. */
  private dirUnsynced = false;
  /** Files with corrupt lines: moved aside to `corrupt/` (not deleted) once a snapshot supersedes them. */
  private readonly corrupt = new Set<string>();
  private readonly log: Logger;

  private constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.log = log;
  }

  /**
   * Open the journal directory and replay it: `onRecord` sees every readable record in order. A torn
   * last line (crash mid-write) is cut off; a corrupt line anywhere is skipped and its file recorded (see
   * `corruptFiles`). Appends then go to a fresh segment.
   */
  static async open(
    dir: string,
    log: Logger,
    onRecord: (rec: Record<string, unknown>) => void,
  ): Promise<SpoolJournal> {
    fs.mkdirSync(dir, { recursive: true });
    const j = new SpoolJournal(dir, log);
    const names = fs.readdirSync(dir);
    for (const n of names) if (n.endsWith('.tmp')) fs.rmSync(join(dir, n), { force: true });
    const snaps = names.filter((n) => /^snap-\d{8}\.log$/.test(n)).sort();
    const segs = names.filter((n) => /^seg-\d{8}\.log$/.test(n)).sort();
    const snap = snaps.at(-1);
    const from = snap ? Number(snap.slice(5, 13)) : 0;
    if (snap) await j.replayFile(join(dir, snap), onRecord);
    let last = from - 1;
    for (const s of segs) {
      const n = Number(s.slice(4, 12));
      last = Math.max(last, n);
      if (n >= from) await j.replayFile(join(dir, s), onRecord);
    }
    j.openSegment(Math.max(last + 1, from, 1));
    return j;
  }

  private async replayFile(path: string, onRecord: (rec: Record<string, unknown>) => void): Promise<void> {
    const r = await replayJournalFile(path, this.log, onRecord);
    if (r.corruptLines.length > 0) this.corrupt.add(basename(path));
  }

  /** Journal files with corrupt lines, kept in place until a snapshot holds what they recorded. */
  get corruptFiles(): number {
    return this.corrupt.size;
  }

  private openSegment(seq: number): void {
    const fd = fs.openSync(join(this.dir, segName(seq)), 'a');
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = fd;
    this.seq = seq;
    this.dirUnsynced = true;
  }

  get segment(): number {
    return this.seq;
  }

  get bytesSinceSnapshot(): number {
    return this.segmentBytes;
  }

  /**
   * Queue a record; it reaches the kernel at the end of this event-loop turn, in one write with every
   * other record of the turn (a SIGKILL before then can only repeat the deliveries that just finished),
   * or at once with `sync`.
   */
  append(line: string): void {
    this.buffer.push(line);
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => this.flush());
    }
  }

  /** Write buffered lines to the segment file (page cache; survives a process crash). */
  flush(): void {
    this.flushQueued = false;
    if (this.buffer.length === 0 || this.fd < 0) return;
    const data = Buffer.from(this.buffer.join('\n') + '\n');
    this.buffer = [];
    let off = 0;
    while (off < data.length) off += fs.writeSync(this.fd, data, off);
    this.segmentBytes += data.length;
    this.unsynced = true;
  }

  /** Whether records were written since the last fsync. */
  get dirty(): boolean {
    return this.unsynced || this.dirUnsynced || this.buffer.length > 0;
  }

  /** Make every record appended so far durable, and the current segment's directory entry. */
  async sync(): Promise<void> {
    this.flush();
    if (this.unsynced) {
      this.unsynced = false;
      await spoolFsync.sync(this.fd, false);
    }
    if (this.dirUnsynced) {
      this.dirUnsynced = false;
      await spoolFsync.syncDir(this.dir).catch((err: unknown) => {
        this.dirUnsynced = true;
        throw err;
      });
    }
  }

  /**
   * First half of compaction, called right after a sync: start segment N+1. Every change from now on
   * lands in N+1, so a snapshot of the live messages taken after this call, replayed before N+1, is
   * complete. Returns N+1 for `writeSnapshot`.
   */
  roll(): number {
    this.flush();
    if (this.unsynced) fs.fsyncSync(this.fd);
    this.unsynced = false;
    this.openSegment(this.seq + 1);
    this.segmentBytes = 0;
    return this.seq;
  }

  /**
   * Second half: write `snap-seq` from the chunks `snapshot` yields (so intake keeps running while a
   * large spool is written), fsync it, rename it into place and delete the files it supersedes.
   */
  async writeSnapshot(seq: number, snapshot: AsyncIterable<string[]>): Promise<void> {
    const tmp = join(this.dir, `${snapName(seq)}.tmp`);
    const fh = await fs.promises.open(tmp, 'w');
    try {
      for await (const lines of snapshot) {
        if (lines.length > 0) await fh.write(lines.join('\n') + '\n');
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    fs.renameSync(tmp, join(this.dir, snapName(seq)));
    await spoolFsync.syncDir(this.dir);
    for (const n of fs.readdirSync(this.dir)) {
      const m = /^(seg|snap)-(\d{8})\.log$/.exec(n);
      if (!m || Number(m[2]) >= seq) continue;
      if (this.corrupt.has(n)) await this.moveAside(n);
      else fs.rmSync(join(this.dir, n), { force: true });
    }
  }

  /** Keep a superseded file with corrupt lines in `corrupt/` for the operator, as Postfix does. */
  private async moveAside(name: string): Promise<void> {
    const dir = join(this.dir, 'corrupt');
    fs.mkdirSync(dir, { recursive: true });
    const to = fs.existsSync(join(dir, name)) ? `${name}.${Date.now()}` : name;
    fs.renameSync(join(this.dir, name), join(dir, to));
    await spoolFsync.syncDir(dir);
    await spoolFsync.syncDir(this.dir);
    this.corrupt.delete(name);
    this.log.error('spool journal file with corrupt lines moved aside', { file: join(dir, to) });
  }

  close(): void {
    this.flush();
    if (this.fd >= 0) {
      try {
        fs.fsyncSync(this.fd);
      } catch (err) {
        throw new FreightError('SPOOL_JOURNAL_SYNC', `journal fsync failed on close: ${String(err)}`);
      }
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}
