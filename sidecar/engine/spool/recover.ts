/**
 * Spool recovery at start-up: replay the journal (snapshot, then segments), drop every message whose
 * body is not wholly on disk (never acknowledged, or cut short on disk), delete orphaned bodies, count
 * live bodies per data segment, and split the survivors into messages still queued and messages that
 * are final (kept until the DSNs they may owe are spooled). Also reads a spool left by the older
 * one-file-per-body layout (`msg/<hh>/<id>.eml`), which drains through the same code.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../common/log.js';
import { decodeAdd, encodeRemove, LEGACY_BODY, type SpoolEntry } from './entry.js';
import { SpoolJournal } from './journal.js';
import type { BodySegments } from './segments.js';

export interface RecoveredSpool {
  journal: SpoolJournal;
  live: Map<string, SpoolEntry>;
  /** Messages with recipients still queued, for the scheduler. */
  queued: SpoolEntry[];
  /** Messages already final (removed once their owed DSNs are spooled). */
  final: SpoolEntry[];
}

/** Where the older layout kept a message's body. */
export function legacyBodyPath(spoolDir: string, id: string): string {
  return join(spoolDir, 'msg', id.slice(0, 2), `${id}.eml`);
}

/** Apply one journal record to the live map (records carry absolute state, so replay is idempotent). */
function replay(live: Map<string, SpoolEntry>, rec: Record<string, unknown>): void {
  const id = rec.id as string;
  switch (rec.t) {
    case 'A':
      live.set(id, decodeAdd(rec));
      break;
    case 'U': {
      const r = live.get(id)?.recipients[rec.i as number];
      if (!r) break;
      r.state = rec.s as SpoolEntry['recipients'][number]['state'];
      r.attempts = rec.a as number;
      r.nextAttemptAt = rec.n as number;
      r.lastDiag = (rec.d as string | null) ?? null;
      break;
    }
    case 'M': {
      const entry = live.get(id);
      if (entry) {
        entry.seg = rec.g as number;
        entry.off = rec.o as number;
      }
      break;
    }
    case 'D': {
      const entry = live.get(id);
      if (entry)
        for (const i of rec.i as number[]) if (entry.recipients[i]) entry.recipients[i]!.dsnSpooled = true;
      break;
    }
    case 'R':
      live.delete(id);
      break;
  }
}

/** Bodies left by a spool that kept one file per message: id → size. */
function legacyBodies(spoolDir: string): Map<string, number> {
  const out = new Map<string, number>();
  const dir = join(spoolDir, 'msg');
  if (!fs.existsSync(dir)) return out;
  for (const hh of fs.readdirSync(dir)) {
    for (const name of fs.readdirSync(join(dir, hh))) {
      const id = name.endsWith('.eml') ? name.slice(0, -4) : name;
      out.set(id, fs.statSync(join(dir, hh, name)).size);
    }
  }
  return out;
}

/** Sees each record right after it was applied to the live map (accounting replay). */
export type RecordTap = (rec: Record<string, unknown>, live: Map<string, SpoolEntry>) => void;

export async function recoverSpool(
  spoolDir: string,
  segments: BodySegments,
  log: Logger,
  tap?: RecordTap,
): Promise<RecoveredSpool> {
  const live = new Map<string, SpoolEntry>();
  const journal = await SpoolJournal.open(join(spoolDir, 'journal'), log, (rec) => {
    replay(live, rec);
    tap?.(rec, live);
  });
  const legacy = legacyBodies(spoolDir);
  let dropped = 0;
  for (const [id, entry] of live) {
    const loc = { seg: entry.seg, off: entry.off };
    const whole = entry.seg === LEGACY_BODY ? legacy.get(id) === entry.size : segments.holds(loc, entry.size);
    if (!whole) {
      log.warn('dropping a journaled message whose body is missing (never acknowledged)', { id });
      live.delete(id);
      journal.append(encodeRemove(id));
      dropped++;
    } else if (entry.seg !== LEGACY_BODY) segments.retain(loc, entry.size);
  }
  let orphans = 0;
  for (const id of legacy.keys()) {
    if (live.get(id)?.seg === LEGACY_BODY) continue;
    fs.rmSync(legacyBodyPath(spoolDir, id), { force: true });
    orphans++;
  }
  await segments.start();
  const queued: SpoolEntry[] = [];
  const final: SpoolEntry[] = [];
  for (const entry of live.values()) (entry.final ? final : queued).push(entry);
  await journal.sync();
  log.info('spool recovered', {
    messages: live.size,
    queued: queued.length,
    dropped,
    orphans,
    segments: segments.count,
  });
  return { journal, live, queued, final };
}
