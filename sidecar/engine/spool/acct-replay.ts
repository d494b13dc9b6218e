/**
 * Accounting rows recovered from the spool journal. Records that produce rows (`A`: a message accepted;
 * `U` with an accounting event: a recipient outcome) carry a record number `q`, assigned in journal
 * order; the accounting store keeps the number up to which it has committed rows (acct_cursor). At
 * start-up every numbered record above that cursor gets its rows rebuilt — with the same builders
 * and dedupe keys as the live rows, so a row that did reach the store before the crash is not doubled.
 * Snapshot records carry no number: compaction only runs once the store has caught up.
 */
import type { AcctRecord } from '../../acct/record.js';
import { decodeEvent, eventRow, receivedRows } from './acct-rows.js';
import type { SpoolEntry } from './entry.js';

export class SpoolAcctReplay {
  /** Highest record number seen (or the cursor): numbering goes on from here. */
  maxSeq: number;
  private readonly rows: AcctRecord[] = [];
  /** Messages accepted after the cursor: their `r` rows wait until the body check has kept them. */
  private readonly accepted = new Map<string, SpoolEntry>();
  private readonly removed = new Set<string>();

  constructor(private readonly cursor: number) {
    this.maxSeq = cursor;
  }

  /** See one replayed record, after it was applied to `live`. */
  record(rec: Record<string, unknown>, live: Map<string, SpoolEntry>): void {
    const q = rec.q;
    if (typeof q !== 'number') {
      const id = rec.id as string;
      if (rec.t !== 'R' || !this.accepted.has(id)) return;
      // A refused message (its round failed) was never acknowledged: no `r` rows.
      if (rec.x === 1) this.accepted.delete(id);
      else this.removed.add(id);
      return;
    }
    if (q > this.maxSeq) this.maxSeq = q;
    if (q <= this.cursor) return;
    const entry = live.get(rec.id as string);
    if (!entry) return;
    if (rec.t === 'A') this.accepted.set(entry.id, entry);
    else if (rec.t === 'U') {
      const ev = decodeEvent(rec.k);
      if (ev)
        this.rows.push(eventRow(entry, rec.i as number, rec.a as number, (rec.d as string) ?? null, ev));
    }
  }

  /**
   * The rows the store is missing, once recovery is done: `live` holds what survived the body check
   * (a message dropped for a missing body was never acknowledged and gets no `r` row).
   */
  missingRows(live: Map<string, SpoolEntry>): AcctRecord[] {
    const out: AcctRecord[] = [];
    for (const [id, entry] of this.accepted) {
      if (live.has(id) || this.removed.has(id)) out.push(...receivedRows(entry, entry.intakeSource));
    }
    out.push(...this.rows);
    return out;
  }
}
