/**
 * Message bodies, appended to shared data segments (`data/seg-N.dat`) instead of one file per message.
 * A file per message cost an open, a close, an fsync and an unlink for every message (more CPU than the
 * rest of intake, in the engine CPU per message that `bench/engine-inject.bench.ts --hold` reports); a
 * segment costs one gathered write and one fdatasync per group-commit round for all of its messages: `append` only reserves the bytes, `sync`
 * writes what the round appended in one `writev` (every syscall is dear on this VM).
 *
 * Each segment counts its live messages and bytes. A sealed segment (no longer appended to) whose last
 * message is gone is deleted; one kept alive by a few long-deferred messages is compacted by the spool,
 * which copies them forward (`relocate`) so disk use follows the live queue, not its history.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { finished, type Readable } from 'node:stream';
import { errorMessage, FreightError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { spoolFsync } from './fsync.js';

const segName = (n: number) => `seg-${String(n).padStart(8, '0')}.dat`;
const SEG_RE = /^seg-(\d{8})\.dat$/;

/** One gathered write of the bodies a round appended to `seg`; throws SPOOL_WRITE (the round fails). */
function writeUnwritten(seg: Segment): void {
  const bufs = seg.unwritten;
  if (bufs.length === 0) return;
  seg.unwritten = [];
  try {
    let pos = seg.unwrittenFrom;
    let written = fs.writevSync(seg.fd, bufs, pos);
    // A short write (rare on a regular file) finishes buffer by buffer.
    for (const buf of bufs) {
      const skip = Math.min(written, buf.length);
      written -= skip;
      for (let done = skip; done < buf.length; )
        done += fs.writeSync(seg.fd, buf, done, buf.length - done, pos + done);
      pos += buf.length;
    }
  } catch (err) {
    throw new FreightError('SPOOL_WRITE', `cannot write ${segName(seg.seq)}: ${errorMessage(err)}`);
  }
}

class Segment {
  readonly seq: number;
  readonly fd: number;
  /** Bytes allocated (the next append's offset); may exceed the file's size after a failed write. */
  size: number;
  live = 0;
  liveBytes = 0;
  sealedAt = 0;
  readers = 0;
  unlinked = false;
  /** Bodies appended but not yet written, contiguous from `unwrittenFrom`. */
  unwritten: Buffer[] = [];
  unwrittenFrom = 0;
  constructor(seq: number, fd: number, size: number) {
    this.seq = seq;
    this.fd = fd;
    this.size = size;
  }
}

/** Where a body lives: segment number and byte offset. */
export interface BodyLocation {
  seg: number;
  off: number;
}

export interface SegmentOptions {
  dir: string;
  /** A segment is sealed and a new one started beyond this size (bytes). */
  segmentBytes: number;
  log: Logger;
}

export class BodySegments {
  readonly dir: string;
  private readonly segmentBytes: number;
  private readonly log: Logger;
  private readonly segs = new Map<number, Segment>();
  private current!: Segment;
  /** Segments written since the last sync, and whether the directory gained a file. */
  private readonly dirty = new Set<Segment>();
  private dirDirty = false;
  /** Highest segment number ever seen here, so a new segment never reuses a name being deleted. */
  private highest = 0;

  constructor(opts: SegmentOptions) {
    this.dir = opts.dir;
    this.segmentBytes = opts.segmentBytes;
    this.log = opts.log;
    fs.mkdirSync(this.dir, { recursive: true });
    for (const name of fs.readdirSync(this.dir)) {
      const m = SEG_RE.exec(name);
      if (!m) continue;
      const fd = fs.openSync(join(this.dir, name), 'r');
      const seg = new Segment(Number(m[1]), fd, fs.fstatSync(fd).size);
      seg.sealedAt = Date.now();
      this.segs.set(seg.seq, seg);
      this.highest = Math.max(this.highest, seg.seq);
    }
  }

  /** Bytes really on disk for a body at `loc` (recovery checks a journaled body is complete). */
  holds(loc: BodyLocation, size: number): boolean {
    const seg = this.segs.get(loc.seg);
    return seg !== undefined && loc.off + size <= seg.size;
  }

  /** Count a recovered or relocated body as live in its segment. */
  retain(loc: BodyLocation, size: number): void {
    const seg = this.segs.get(loc.seg);
    if (!seg) return;
    seg.live++;
    seg.liveBytes += size;
  }

  /** A body is no longer needed; a sealed segment left empty is deleted. */
  release(loc: BodyLocation, size: number): void {
    const seg = this.segs.get(loc.seg);
    if (!seg) return;
    seg.live--;
    seg.liveBytes -= size;
    if (seg.live <= 0 && seg !== this.current) this.drop(seg);
  }

  /** After recovery: delete segments nothing refers to, then start a fresh one for appends. */
  async start(): Promise<void> {
    for (const seg of [...this.segs.values()]) if (seg.live <= 0) this.drop(seg);
    this.openCurrent(this.highest + 1);
    await this.sync();
  }

  private openCurrent(seq: number): void {
    const fd = fs.openSync(join(this.dir, segName(seq)), 'wx+');
    if (this.current) this.current.sealedAt = Date.now();
    this.current = new Segment(seq, fd, 0);
    this.highest = Math.max(this.highest, seq);
    this.segs.set(seq, this.current);
    this.dirDirty = true;
  }

  /**
   * Reserve room for a body in the current segment; it is written and made durable by the next `sync`
   * (a failed `sync` leaves a hole there, never a region a later body would share).
   */
  append(body: Buffer): BodyLocation {
    if (this.current.size >= this.segmentBytes) {
      const old = this.current;
      this.openCurrent(old.seq + 1);
      if (old.live <= 0) this.drop(old);
    }
    const seg = this.current;
    const off = seg.size;
    if (seg.unwritten.length === 0) seg.unwrittenFrom = off;
    seg.unwritten.push(body);
    seg.size += body.length;
    seg.live++;
    seg.liveBytes += body.length;
    this.dirty.add(seg);
    return { seg: seg.seq, off };
  }

  /** Write every body appended so far, then make them durable (and new segments' directory entries). */
  async sync(): Promise<void> {
    const segs = [...this.dirty];
    this.dirty.clear();
    const dir = this.dirDirty;
    this.dirDirty = false;
    for (const seg of segs) writeUnwritten(seg);
    for (const seg of segs) await spoolFsync.sync(seg.fd, true);
    if (dir) await spoolFsync.syncDir(this.dir);
  }

  /** Read a whole body into memory. */
  async read(loc: BodyLocation, size: number): Promise<Buffer> {
    const seg = this.segs.get(loc.seg);
    if (!seg || seg.unlinked) throw new FreightError('SPOOL_READ', `body segment ${loc.seg} is gone`);
    seg.readers++;
    try {
      const buf = Buffer.allocUnsafe(size);
      let done = 0;
      while (done < size) {
        const { bytesRead } = await new Promise<{ bytesRead: number }>((resolve, reject) =>
          fs.read(seg.fd, buf, done, size - done, loc.off + done, (err, bytesRead) =>
            err ? reject(err) : resolve({ bytesRead }),
          ),
        );
        if (bytesRead === 0) throw new FreightError('SPOOL_READ', `body in ${segName(seg.seq)} is short`);
        done += bytesRead;
      }
      return buf;
    } finally {
      this.doneReading(seg);
    }
  }

  /** Stream a body (for bodies too large to hold in memory per attempt). */
  stream(loc: BodyLocation, size: number): Readable {
    const seg = this.segs.get(loc.seg);
    if (!seg || seg.unlinked) throw new FreightError('SPOOL_READ', `body segment ${loc.seg} is gone`);
    seg.readers++;
    const rs = fs.createReadStream('', {
      fd: seg.fd,
      autoClose: false,
      start: loc.off,
      end: loc.off + size - 1,
      highWaterMark: 64 * 1024,
    });
    finished(rs, () => this.doneReading(seg));
    return rs;
  }

  private doneReading(seg: Segment): void {
    seg.readers--;
    if (seg.unlinked && seg.readers <= 0) this.closeFd(seg);
  }

  private drop(seg: Segment): void {
    if (seg.unlinked) return;
    seg.unlinked = true;
    this.segs.delete(seg.seq);
    this.dirty.delete(seg);
    fs.rm(join(this.dir, segName(seg.seq)), { force: true }, (err) => {
      if (err) this.log.warn('cannot delete a spool data segment', { seg: seg.seq, error: err.message });
    });
    if (seg.readers <= 0) this.closeFd(seg);
  }

  private closeFd(seg: Segment): void {
    fs.close(seg.fd, (err) => {
      if (err) this.log.warn('cannot close a spool data segment', { seg: seg.seq, error: err.message });
    });
  }

  /**
   * Sealed segments worth compacting: older than `minAgeMs`, and less than `maxLiveShare` of their bytes
   * still live (a few stragglers holding a large file).
   */
  sparse(now: number, minAgeMs: number, maxLiveShare: number): number[] {
    const out: number[] = [];
    for (const seg of this.segs.values()) {
      if (seg === this.current || seg.live <= 0 || now - seg.sealedAt < minAgeMs) continue;
      if (seg.liveBytes < seg.size * maxLiveShare) out.push(seg.seq);
    }
    return out;
  }

  get count(): number {
    return this.segs.size;
  }

  get bytes(): number {
    let n = 0;
    for (const s of this.segs.values()) n += s.size;
    return n;
  }

  close(): void {
    for (const seg of this.segs.values()) {
      try {
        if (this.dirty.has(seg)) {
          writeUnwritten(seg);
          fs.fdatasyncSync(seg.fd);
        }
        fs.closeSync(seg.fd);
      } catch (err) {
        this.log.warn('closing a spool data segment failed', { seg: seg.seq, error: errorMessage(err) });
      }
    }
    this.segs.clear();
    this.dirty.clear();
  }
}
