/**
 * The spool's side of the accounting feed. Journal records that carry rows are numbered; the store
 * commits its cursor only up to a number whose records are in the kernel. While a commit round's `A`
 * records wait for their fsync the position holds at the number before them (their `r` rows come
 * after the fsync). At start-up, the rows of records above the store's cursor are rebuilt.
 */
import type { AcctRecord } from '../../acct/record.js';
import { SpoolAcctReplay } from './acct-replay.js';
import type { SpoolEntry } from './entry.js';

export class SpoolAcctFeed {
  /** Accounting number of the newest numbered record. */
  seq = 0;
  /** While a round's `A` records wait for their fsync, the number before them. */
  hold: number | null = null;
  /** Compaction drops records: it waits until this says the accounting store holds all their rows. */
  caughtUp: () => boolean = () => true;
  private missing: AcctRecord[] = [];

  /** `cursor`: the store's acct_cursor (null: none yet); undefined: no accounting replay. */
  constructor(private readonly cursor: number | null | undefined) {}

  /** The replay recovery feeds each record to, or null when no cursor was given. */
  replay(): SpoolAcctReplay | null {
    return this.cursor !== undefined ? new SpoolAcctReplay(this.cursor ?? 0) : null;
  }

  /** After recovery: numbering goes on past every replayed record; the rebuilt rows wait to be taken. */
  recovered(replay: SpoolAcctReplay | null, live: Map<string, SpoolEntry>): void {
    if (!replay) return;
    this.seq = replay.maxSeq;
    this.missing = replay.missingRows(live);
  }

  takeMissing(): AcctRecord[] {
    const rows = this.missing;
    this.missing = [];
    return rows;
  }

  position(): number {
    return this.hold ?? this.seq;
  }
}
