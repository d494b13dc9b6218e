/**
 * Log files by content: the fingerprint of a file (sha1 of its first line, up to 512 bytes) and the search
 * for a rotated predecessor — `maillog.1`, `maillog-20260305`, `maillog.20260305-062605.gz` (postfix
 * logrotate) — whose fingerprint matches a saved position, so the tailer can finish that file first.
 * Gzipped files are read through a streaming gunzip; offsets always count uncompressed bytes.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createGunzip } from 'node:zlib';

export const FP_MAX = 512;

export function fpHash(buf: Buffer): string {
  return createHash('sha1').update(buf).digest('hex');
}

/** Length of the fingerprint for bytes starting at offset 0: the first line, capped; 0 if not complete yet. */
export function fpLength(head: Buffer): number {
  const nl = head.indexOf(10);
  if (nl >= 0 && nl < FP_MAX) return nl + 1;
  return head.length >= FP_MAX ? FP_MAX : 0;
}

/** A sequential reader of a file's bytes from some offset (plain file or gzip). */
export interface ByteSource {
  readonly path: string;
  readonly ino: number;
  /** Next bytes, or null at the end. */
  next(max: number): Promise<Buffer | null>;
  close(): Promise<void>;
}

export function isGzip(path: string): boolean {
  return path.endsWith('.gz');
}

/** Stream a gzip file's uncompressed bytes, skipping the first `skip`. */
export async function gzipSource(path: string, skip: number): Promise<ByteSource> {
  const st = await stat(path);
  const stream = createReadStream(path).pipe(createGunzip());
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let toSkip = skip;
  let pending: Buffer | null = null;
  return {
    path,
    ino: st.ino,
    async next(max: number) {
      for (;;) {
        let buf = pending;
        pending = null;
        if (!buf) {
          const r = await it.next();
          if (r.done) return null;
          buf = r.value;
        }
        if (toSkip > 0) {
          if (buf.length <= toSkip) {
            toSkip -= buf.length;
            continue;
          }
          buf = buf.subarray(toSkip);
          toSkip = 0;
        }
        if (buf.length > max) {
          pending = buf.subarray(max);
          buf = buf.subarray(0, max);
        }
        return buf;
      }
    },
    async close() {
      stream.destroy();
    },
  };
}

/** First `len` uncompressed bytes of a file (fewer if it is shorter). */
export async function headBytes(path: string, len: number): Promise<Buffer> {
  if (isGzip(path)) {
    const src = await gzipSource(path, 0);
    const parts: Buffer[] = [];
    let n = 0;
    try {
      while (n < len) {
        const b = await src.next(len - n);
        if (!b) break;
        parts.push(b);
        n += b.length;
      }
    } catch {
      // A truncated or still-being-written .gz: whatever came out is the head we have.
    } finally {
      await src.close();
    }
    return Buffer.concat(parts);
  }
  let fh: FileHandle | null = null;
  try {
    fh = await open(path, 'r');
    const buf = Buffer.alloc(len);
    const { bytesRead } = await fh.read(buf, 0, len, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh?.close();
  }
}

/** Rotated siblings of `path` (`maillog.1`, `maillog-20260305.gz`, …) with their mtimes. */
async function rotatedSiblings(path: string): Promise<{ file: string; mtime: number }[]> {
  const dir = dirname(path);
  const base = basename(path);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: { file: string; mtime: number }[] = [];
  for (const name of names) {
    if (name === base || !name.startsWith(base)) continue;
    const sep = name.charCodeAt(base.length);
    if (sep !== 46 /* . */ && sep !== 45 /* - */) continue;
    try {
      const st = await stat(join(dir, name));
      if (st.isFile()) out.push({ file: join(dir, name), mtime: st.mtimeMs });
    } catch {
      // Vanished between readdir and stat (gzip replacing it): the .gz is in the list too.
    }
  }
  return out;
}

/** The rotated sibling of `path` whose first `fpLen` bytes hash to `hash`, newest first; null if none. */
export async function findRotated(path: string, fpLen: number, hash: string): Promise<string | null> {
  const candidates = (await rotatedSiblings(path)).sort((a, b) => b.mtime - a.mtime);
  for (const c of candidates) {
    try {
      const head = await headBytes(c.file, fpLen);
      if (head.length === fpLen && fpHash(head) === hash) return c.file;
    } catch {
      // Unreadable candidate: not ours.
    }
  }
  return null;
}

/**
 * The rotated sibling written next after a file last written at `afterMtimeMs`: the oldest one with a
 * later mtime whose first line differs from `exclude` (a .gz of the same file keeps its mtime and first
 * line, so it is never read twice). Null when the live file is next.
 */
export async function nextRotated(
  path: string,
  afterMtimeMs: number,
  exclude: { fpLen: number; fpHash: string } | null,
): Promise<string | null> {
  const later = (await rotatedSiblings(path))
    .filter((c) => c.mtime > afterMtimeMs)
    .sort((a, b) => a.mtime - b.mtime);
  for (const c of later) {
    if (exclude && exclude.fpLen > 0) {
      try {
        const head = await headBytes(c.file, exclude.fpLen);
        if (head.length === exclude.fpLen && fpHash(head) === exclude.fpHash) continue;
      } catch {
        continue;
      }
    }
    return c.file;
  }
  return null;
}
