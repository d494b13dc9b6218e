/**
 * The spool's two housekeeping jobs, both run while intake and delivery carry on:
 * - journal compaction: roll to a new journal segment, then write a snapshot of every live message, so
 *   recovery replays the snapshot plus what came after instead of the whole history;
 * - data-segment compaction: copy the bodies of the few messages that keep a mostly dead data segment
 *   alive (long-deferred mail) to the current segment, so the old file can go.
 */
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { encodeAdd, type SpoolEntry } from './entry.js';
import type { SpoolJournal } from './journal.js';
import type { BodyLocation, BodySegments } from './segments.js';

/** Snapshot `live` after rolling the journal; resolves when the snapshot is durable. */
export async function compactJournal(
  journal: SpoolJournal,
  live: Map<string, SpoolEntry>,
  log: Logger,
): Promise<void> {
  const seq = journal.roll();
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
  try {
    await journal.writeSnapshot(seq, chunks());
    log.info('spool journal compacted', { messages: live.size, ms: Date.now() - started });
  } catch (err) {
    log.error('spool journal compaction failed', { error: errorMessage(err) });
  }
}

/** A body copied forward, waiting for the commit round that journals its new place. */
export interface BodyMove {
  entry: SpoolEntry;
  from: BodyLocation;
  to: BodyLocation;
}

/**
 * Copy the live bodies of `segs` to the current data segment. Each copy becomes a `BodyMove` for the
 * spool's next commit round; until that round has journaled it, readers keep using the old place.
 */
export async function copySparseBodies(
  segs: number[],
  live: Map<string, SpoolEntry>,
  segments: BodySegments,
  onMove: (m: BodyMove) => void,
  log: Logger,
): Promise<number> {
  const wanted = new Set(segs);
  const entries = [...live.values()].filter((e) => wanted.has(e.seg));
  let moved = 0;
  for (const entry of entries) {
    const from = { seg: entry.seg, off: entry.off };
    let body: Buffer;
    try {
      body = await segments.read(from, entry.size);
    } catch (err) {
      log.warn('segment compaction could not read a body; left in place', {
        id: entry.id,
        error: errorMessage(err),
      });
      continue;
    }
    // Removed or already moved while reading: nothing to copy.
    if (live.get(entry.id) !== entry || entry.seg !== from.seg || entry.off !== from.off) continue;
    try {
      onMove({ entry, from, to: segments.append(body) });
      moved++;
    } catch (err) {
      log.warn('segment compaction stopped: cannot write', { error: errorMessage(err) });
      break;
    }
  }
  return moved;
}

/** Pause between compactions that try to move a corrupt journal file aside, while they fail. */
const CORRUPT_COMPACT_RETRY_MS = 60_000;

/** When the journal is compacted: grown past its bound, or holding a corrupt file to move aside. */
export class JournalCompaction {
  private running = false;
  /** When a compaction last started to move a corrupt journal file aside. */
  private corruptCompactedAt = 0;

  constructor(private readonly minBytes: number) {}

  /** Compaction drops records: only once `caughtUp` says the accounting store holds every row they carry. */
  maybeRun(journal: SpoolJournal, live: Map<string, SpoolEntry>, caughtUp: () => boolean, log: Logger): void {
    if (this.running || journal.dirty || !this.needed(journal, live.size) || !caughtUp()) return;
    this.running = true;
    if (journal.corruptFiles > 0) this.corruptCompactedAt = Date.now();
    void compactJournal(journal, live, log).finally(() => {
      this.running = false;
    });
  }

  /** A journal file with corrupt lines is moved aside by a compaction (retried while one fails). */
  private needed(journal: SpoolJournal, liveCount: number): boolean {
    if (journal.corruptFiles > 0 && Date.now() - this.corruptCompactedAt >= CORRUPT_COMPACT_RETRY_MS)
      return true;
    const bytes = journal.bytesSinceSnapshot;
    return bytes > this.minBytes && bytes > liveCount * 600;
  }
}
