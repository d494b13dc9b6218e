/**
 * How far a writer's rows are committed in the log it derives them from (`acct_cursor`): every log
 * record numbered up to the cursor has its rows in `acct`. The row batch and the cursor move in one
 * transaction, so after a crash exactly the records numbered above it still need their rows.
 */
import type Database from 'better-sqlite3';

export class AcctCursor {
  private readonly select: Database.Statement;
  private readonly upsert: Database.Statement;

  constructor(
    db: Database.Database,
    readonly source: string,
  ) {
    this.select = db.prepare('SELECT seq FROM acct_cursor WHERE source = ?');
    this.upsert = db.prepare(
      `INSERT INTO acct_cursor (source, seq) VALUES (?, ?)
       ON CONFLICT(source) DO UPDATE SET seq = excluded.seq`,
    );
  }

  /** The committed record number, or null when this source never wrote one. */
  read(): number | null {
    const row = this.select.get(this.source) as { seq: number } | undefined;
    return row ? row.seq : null;
  }

  /** Store `seq`; run it inside the transaction that commits the rows it covers. */
  write(seq: number): void {
    this.upsert.run(this.source, seq);
  }
}
