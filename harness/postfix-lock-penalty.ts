/**
 * qmgr moves a queue file that it finds locked (the delivery agent that just deferred it has not closed
 * it yet) back to `incoming` with its time stamp 60 s ahead, a constant compiled into Postfix. With the
 * test world's 1 s backoff this happens when the machine is loaded: a retry that should come after 1 s
 * then waits a whole minute, and a test waiting for retries times out. Nothing else leaves a future time
 * stamp in `incoming` (cleanup writes its files there with the current time), so a watcher that finds
 * one asks for a flush: `postqueue -f` scans every queue ignoring time stamps, which gives the retry the
 * backoff asked for at about the time it asked for it. Production backoff (minutes) never races the
 * agent's close, so this belongs to the test world only.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** A time stamp this far ahead can only be qmgr's lock penalty (the backoff here is at most 2 s). */
const AHEAD_MS = 5_000;

function parkedFiles(incoming: string, now: number): string[] {
  let names: string[];
  try {
    names = readdirSync(incoming);
  } catch {
    return [];
  }
  return names.filter((name) => {
    try {
      return statSync(join(incoming, name)).mtimeMs > now + AHEAD_MS;
    } catch {
      return false; // delivered or moved between readdir and stat
    }
  });
}

export interface LockPenaltyWatcher {
  /** Queue files found parked with the lock penalty so far. */
  readonly found: number;
  stop(): void;
}

/**
 * Checks `incoming` every second and flushes while a parked file is there: a flush that comes while the
 * lock is still held parks the file once more, so it is repeated until the file has moved on.
 */
export function watchLockPenalty(queueDir: string, flush: () => Promise<unknown>): LockPenaltyWatcher {
  const incoming = join(queueDir, 'incoming');
  const seen = new Set<string>();
  let flushing = false;
  const timer = setInterval(() => {
    if (flushing) return;
    const parked = parkedFiles(incoming, Date.now());
    if (parked.length === 0) return;
    for (const id of parked) seen.add(id);
    flushing = true;
    flush()
      .catch(() => undefined) // the instance may be stopping; the next tick tries again if not
      .finally(() => {
        flushing = false;
      });
  }, 1_000);
  timer.unref();
  return {
    get found() {
      return seen.size;
    },
    stop: () => clearInterval(timer),
  };
}
