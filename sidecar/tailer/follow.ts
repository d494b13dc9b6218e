/**
 * Follows the maillog on fs primitives (open/read/fstat/stat; no watcher library — `tail-file` counts
 * characters, and an exact resume needs byte offsets plus a content fingerprint). Hands out chunks of
 * complete lines with the position just after them, so the caller can commit rows and position together.
 *
 * Rotation: rename + new file and `postfix logrotate` (rename, reload, gzip) — the old file is read to its
 * end through the still-open descriptor, and only once it has been quiet for `settleMs` after the new file
 * appeared does reading move to the new file. copytruncate — a shrunken file or a changed first line — is
 * finished from the rotated copy (found by fingerprint) from the saved offset before the live file is read
 * from its start. After a restart a position whose fingerprint no longer matches the live file is looked up
 * among the rotated files (plain or .gz) the same way.
 */
import { type FileHandle, open, stat } from 'node:fs/promises';
import type { Logger } from '../common/log.js';
import type { FilePosition } from './offset-store.js';
import {
  type ByteSource,
  FP_MAX,
  findRotated,
  fpHash,
  fpLength,
  gzipSource,
  isGzip,
  nextRotated,
} from './rotated.js';

export interface Chunk {
  /** Complete lines, `\n`-separated (the last newline removed). */
  text: string;
  /** Position just after these lines. */
  position: FilePosition;
}

export interface FollowOptions {
  /** How long the old file must stay quiet after a new one appears before switching (ms). */
  settleMs?: number;
  chunkBytes?: number;
  log: Logger;
}

interface Current {
  path: string;
  ino: number;
  /** Plain file being followed (live or rotated); null while reading a .gz. */
  fh: FileHandle | null;
  gz: ByteSource | null;
  /** A rotated predecessor: at its end, continue with the next rotated file or the live file. */
  predecessor: boolean;
  /** mtime of a .gz (fixed); plain files are stat'ed when finished. */
  mtimeMs: number;
}

export class LogFollower {
  private cur: Current | null = null;
  private offset = 0;
  private partial: Buffer = Buffer.alloc(0);
  private fpLen = 0;
  private fpHash = '';
  private rotationSeenAt: number | null = null;
  private lastDataAt = 0;
  private readonly settleMs: number;
  private readonly chunkBytes: number;
  private readonly log: Logger;

  constructor(
    readonly path: string,
    opts: FollowOptions,
  ) {
    this.settleMs = opts.settleMs ?? 300;
    this.chunkBytes = opts.chunkBytes ?? 1 << 20;
    this.log = opts.log;
  }

  /** Where the next line starts (committed-able position). */
  position(): FilePosition {
    return {
      fpLen: this.fpLen,
      fpHash: this.fpHash,
      offset: this.offset,
      ino: this.cur?.ino ?? 0,
      path: this.cur?.path ?? this.path,
    };
  }

  /** Resume from a saved position (or the start of the live file when there is none). */
  async start(saved: FilePosition | null): Promise<void> {
    if (!saved || saved.fpLen === 0) {
      if (await this.openLive(saved?.offset ?? 0)) return;
      return;
    }
    const head = await this.liveHead(saved.fpLen);
    if (head && head.hash === saved.fpHash && head.size >= saved.offset) {
      await this.openLive(saved.offset, saved.fpLen, saved.fpHash);
      return;
    }
    const rotated = await findRotated(this.path, saved.fpLen, saved.fpHash);
    if (rotated) {
      this.log.info('finishing rotated log first', { file: rotated, offset: saved.offset });
      await this.openPredecessor(rotated, saved);
      return;
    }
    this.log.warn('saved log position matches no file; reading the live log from its start', {
      path: this.path,
      offset: saved.offset,
    });
    await this.openLive(0);
  }

  private async liveHead(len: number): Promise<{ hash: string; size: number } | null> {
    let fh: FileHandle | null = null;
    try {
      fh = await open(this.path, 'r');
      const st = await fh.stat();
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, 0);
      return bytesRead === len ? { hash: fpHash(buf), size: st.size } : { hash: '', size: st.size };
    } catch {
      return null;
    } finally {
      await fh?.close();
    }
  }

  private async closeCurrent(): Promise<void> {
    const c = this.cur;
    this.cur = null;
    if (c?.fh) await c.fh.close().catch(() => undefined);
    if (c?.gz) await c.gz.close().catch(() => undefined);
  }

  private async openLive(offset: number, fpLen = 0, hash = ''): Promise<boolean> {
    await this.closeCurrent();
    this.offset = offset;
    this.partial = Buffer.alloc(0);
    this.fpLen = fpLen;
    this.fpHash = hash;
    this.rotationSeenAt = null;
    try {
      const fh = await open(this.path, 'r');
      const st = await fh.stat();
      this.cur = { path: this.path, ino: st.ino, fh, gz: null, predecessor: false, mtimeMs: 0 };
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return false;
    }
  }

  private async openPredecessor(file: string, pos: FilePosition): Promise<void> {
    await this.closeCurrent();
    this.offset = pos.offset;
    this.partial = Buffer.alloc(0);
    this.fpLen = pos.fpLen;
    this.fpHash = pos.fpHash;
    if (isGzip(file)) {
      const gz = await gzipSource(file, pos.offset);
      const st = await stat(file);
      this.cur = { path: file, ino: gz.ino, fh: null, gz, predecessor: true, mtimeMs: st.mtimeMs };
    } else {
      const fh = await open(file, 'r');
      const st = await fh.stat();
      this.cur = { path: file, ino: st.ino, fh, gz: null, predecessor: true, mtimeMs: 0 };
    }
  }

  /**
   * A file is finished for good: continue with the rotated file written after it (several rotations
   * may have happened while the tailer was down or behind), else with the live file from its start.
   */
  private async advance(): Promise<void> {
    const c = this.cur!;
    const mtime = c.fh ? (await c.fh.stat()).mtimeMs : c.mtimeMs;
    const next = await nextRotated(
      this.path,
      mtime,
      this.fpLen > 0 ? { fpLen: this.fpLen, fpHash: this.fpHash } : null,
    );
    if (next) {
      this.log.info('reading the next rotated log', { file: next });
      await this.openPredecessor(next, { fpLen: 0, fpHash: '', offset: 0, ino: 0, path: next });
    } else {
      await this.openLive(0);
    }
  }

  /** Take new bytes; returns a chunk if they complete at least one line. */
  private consume(data: Buffer): Chunk | null {
    const buf = this.partial.length > 0 ? Buffer.concat([this.partial, data]) : data;
    if (this.fpLen === 0 && this.offset === 0) {
      const len = fpLength(buf.subarray(0, FP_MAX));
      if (len > 0) {
        this.fpLen = len;
        this.fpHash = fpHash(buf.subarray(0, len));
      }
    }
    const last = buf.lastIndexOf(10);
    if (last < 0) {
      this.partial = Buffer.from(buf);
      return null;
    }
    const text = buf.toString('utf8', 0, last);
    this.offset += last + 1;
    this.partial = last + 1 < buf.length ? Buffer.from(buf.subarray(last + 1)) : Buffer.alloc(0);
    return { text, position: this.position() };
  }

  /** At the end of a file for good: an unterminated last line still counts. */
  private finishFile(): Chunk | null {
    if (this.partial.length === 0) return null;
    const text = this.partial.toString('utf8');
    this.offset += this.partial.length;
    this.partial = Buffer.alloc(0);
    return { text, position: this.position() };
  }

  /** False if the followed file was truncated or rewritten in place (copytruncate). */
  private async unchanged(fh: FileHandle): Promise<boolean> {
    const st = await fh.stat();
    if (st.size < this.offset + this.partial.length) return false;
    if (this.fpLen === 0) return true;
    const buf = Buffer.alloc(this.fpLen);
    const { bytesRead } = await fh.read(buf, 0, this.fpLen, 0);
    return bytesRead === this.fpLen && fpHash(buf) === this.fpHash;
  }

  private async onTruncated(): Promise<void> {
    const pos = this.position();
    const copy = this.fpLen > 0 ? await findRotated(this.path, this.fpLen, this.fpHash) : null;
    if (copy) {
      this.log.info('log truncated in place; finishing the rotated copy first', {
        file: copy,
        offset: pos.offset,
      });
      await this.openPredecessor(copy, pos);
    } else {
      this.log.warn('log truncated and no rotated copy found; reading it from its start', {
        path: this.path,
      });
      await this.openLive(0);
    }
  }

  /** The next chunk of complete lines, or null when there is nothing new right now. */
  async read(): Promise<Chunk | null> {
    for (;;) {
      const c = this.cur;
      if (!c) {
        if (!(await this.openLive(0))) return null;
        continue;
      }
      if (c.gz) {
        const data = await c.gz.next(this.chunkBytes);
        if (data) {
          const chunk = this.consume(data);
          if (chunk) return chunk;
          continue;
        }
        const tail = this.finishFile();
        await this.advance();
        if (tail) return tail;
        continue;
      }
      const fh = c.fh!;
      if (!c.predecessor && !(await this.unchanged(fh))) {
        await this.onTruncated();
        continue;
      }
      const buf = Buffer.allocUnsafe(this.chunkBytes);
      const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset + this.partial.length);
      if (bytesRead > 0) {
        // Re-check: a truncation racing the read may have handed us bytes of the new content.
        if (!c.predecessor && !(await this.unchanged(fh))) {
          await this.onTruncated();
          continue;
        }
        this.lastDataAt = Date.now();
        const chunk = this.consume(buf.subarray(0, bytesRead));
        if (chunk) return chunk;
        continue;
      }
      if (c.predecessor) {
        const tail = this.finishFile();
        await this.advance();
        if (tail) return tail;
        continue;
      }
      const st = await stat(this.path).catch(() => null);
      if (st && st.ino !== c.ino) {
        const now = Date.now();
        this.rotationSeenAt ??= now;
        if (now - Math.max(this.rotationSeenAt, this.lastDataAt) >= this.settleMs) {
          const tail = this.finishFile();
          this.log.info('log rotated; following the new file', { path: this.path });
          await this.advance();
          if (tail) return tail;
          continue;
        }
      }
      return null;
    }
  }

  async close(): Promise<void> {
    await this.closeCurrent();
  }
}
