/**
 * Reads one journal file (a segment or a snapshot) record by record, in bounded memory. Two kinds of bad
 * line are told apart:
 * - a torn tail: the file's last line, cut short without its newline by a crash mid-write. Nothing was
 *   acknowledged on it; it is cut off the file so the file ends on a whole record again.
 * - a corrupt line: any other line that is not a JSON object (a damaged block, an operator's edit). It is
 *   skipped with its line number and replay goes on, so every readable record still counts; the journal
 *   moves such a file aside once a snapshot holds the state it contributed.
 */
import fs from 'node:fs';
import type { Logger } from '../../common/log.js';

/** Longer than any record the spool writes (an `A` record for thousands of recipients); beyond it a line is corrupt. */
const MAX_LINE_BYTES = 16 * 1024 ** 2;
const CHUNK_BYTES = 1024 ** 2;

export interface ReplayResult {
  /** Line numbers (1-based) of corrupt lines. */
  corruptLines: number[];
  /** Bytes cut off the end of the file (a torn last line); 0 if it ended on a whole record. */
  tornBytes: number;
}

/** A JSON object, or null for anything else. */
function parseRecord(line: Buffer): Record<string, unknown> | null {
  try {
    const rec: unknown = JSON.parse(line.toString('utf8'));
    return typeof rec === 'object' && rec !== null && !Array.isArray(rec)
      ? (rec as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** Line splitting across chunks; a line longer than MAX_LINE_BYTES is dropped and marked overlong. */
class LineReader {
  private parts: Buffer[] = [];
  private partBytes = 0;
  overlong = false;

  /** Bytes of the unfinished line so far (0 when none). */
  get pending(): number {
    return this.overlong ? 1 : this.partBytes;
  }

  /** The finished line ending with `piece`. */
  finish(piece: Buffer): Buffer {
    const line = this.parts.length > 0 ? Buffer.concat([...this.parts, piece]) : piece;
    this.parts = [];
    this.partBytes = 0;
    return line;
  }

  /** Keep the start of a line that continues in the next chunk (copied: the chunk buffer is reused). */
  carry(piece: Buffer): void {
    if (this.overlong || piece.length === 0) return;
    if (this.partBytes + piece.length > MAX_LINE_BYTES) {
      this.overlong = true;
      this.parts = [];
      this.partBytes = 0;
      return;
    }
    this.parts.push(Buffer.from(piece));
    this.partBytes += piece.length;
  }
}

/** Replays `path` into `onRecord`; cuts a torn tail off the file. */
export async function replayJournalFile(
  path: string,
  log: Logger,
  onRecord: (rec: Record<string, unknown>) => void,
): Promise<ReplayResult> {
  const result: ReplayResult = { corruptLines: [], tornBytes: 0 };
  const reader = new LineReader();
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let lineNo = 0;
  let lineStart = 0;
  let pos = 0;
  const line = (bytes: Buffer) => {
    lineNo++;
    const overlong = reader.overlong;
    reader.overlong = false;
    if (bytes.length === 0 && !overlong) return;
    const rec = overlong ? null : parseRecord(bytes);
    if (rec) onRecord(rec);
    else {
      result.corruptLines.push(lineNo);
      log.warn('corrupt spool journal line skipped', { file: path, line: lineNo });
    }
  };
  const fh = await fs.promises.open(path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK_BYTES, pos);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      let from = 0;
      for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, from)) {
        line(reader.finish(chunk.subarray(from, nl)));
        from = nl + 1;
        lineStart = pos + from;
      }
      reader.carry(chunk.subarray(from));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  if (reader.pending === 0) return result;
  // The last line has no newline: a whole record (the write stopped just before it) or a torn one.
  const rec = reader.overlong ? null : parseRecord(reader.finish(Buffer.alloc(0)));
  if (rec) {
    onRecord(rec);
    return result;
  }
  result.tornBytes = pos - lineStart;
  await fs.promises.truncate(path, lineStart);
  log.warn('torn last spool journal line cut off (a write cut short by a crash)', {
    file: path,
    line: lineNo + 1,
    bytes: result.tornBytes,
  });
  return result;
}
