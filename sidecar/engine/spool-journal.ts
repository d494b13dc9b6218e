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
import { join } from 'node:path';
import readline from 'node:readline';
import { FreightError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { spoolFsync } from './spool-fsync.js';

const pad = (n: number) => String(n).padStart(8, '0');
const segName = (n: number) => `seg-${pad(n)}.log`;
const snapName = (n: number) => `snap-${pad(n)}.log`;

/** fsync a directory so a file created (or renamed) in it survives a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await fs.promises.open(dir, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

export class SpoolJournal {
  readonly dir: string;
  private fd = -1;
  private seq = 0;
  private buffer: string[] = [];
  private flushQueued = false;
  /** Bytes written to segments since the last snapshot (compaction trigger). */
  private segmentBytes = 0;
  private unsynced = false;
  private readonly log: Logger;

  private constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.log = log;
  }

  /**
   * Open the journal directory and replay it: `onRecord` sees every record in order. A torn last line
   * (crash mid-write) is skipped with a warning. Appends then go to a fresh segment, so a torn tail is
   * never followed by new records on the same line.
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
    const rl = readline.createInterface({
      input: fs.createReadStream(path),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
    let lineNo = 0;
    for await (const line of rl) {
      lineNo++;
      if (line === '') continue;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        this.log.warn('skipping unreadable journal line (torn write at a crash)', {
          file: path,
          line: lineNo,
        });
        continue;
      }
      onRecord(rec);
    }
  }

  private openSegment(seq: number): void {
    const fd = fs.openSync(join(this.dir, segName(seq)), 'a');
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = fd;
    this.seq = seq;
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
    return this.unsynced || this.buffer.length > 0;
  }

  /** Make every record appended so far durable. */
  async sync(): Promise<void> {
    this.flush();
    if (!this.unsynced) return;
    this.unsynced = false;
    await spoolFsync.sync(this.fd, false);
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
    await fsyncDir(this.dir);
    for (const n of fs.readdirSync(this.dir)) {
      const m = /^(seg|snap)-(\d{8})\.log$/.exec(n);
      if (m && Number(m[2]) < seq) fs.rmSync(join(this.dir, n), { force: true });
    }
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
