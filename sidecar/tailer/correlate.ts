/**
 * Correlation by queue id: what earlier lines said about a queue file (sender, size, Message-ID, client,
 * deferred recipients) is kept until Postfix logs `removed`, so a delivery line becomes a complete row.
 * Short queue ids are reused once a file is removed, so a new `client=`/`uid=` line for a known id starts
 * a fresh state. Changes are tracked so the live tailer can persist them in the same transaction as the
 * rows and resume after a crash with the same knowledge.
 */
import type { AcctRecord } from '../acct/record.js';
import type { ParsedLine } from './line-parser.js';
import type { PendingRcpt, QueueState, RowBuilder, SuppressRequest } from './rows.js';

/** Queue files older than this without a line are forgotten (a `removed` line was lost or never written). */
export const DEFAULT_STATE_TTL_MS = 7 * 24 * 3600_000;

function fresh(time: number): QueueState {
  return {
    from: null,
    size: 0,
    messageId: null,
    client: null,
    timeQueued: null,
    lastSeen: time,
    pending: null,
  };
}

export class Correlator {
  readonly states = new Map<string, QueueState>();
  /** Queue ids whose state changed (or vanished) since the last drainChanges(). */
  private readonly dirty = new Set<string>();
  /** Queue ids that have a persisted row, so a removal knows to delete it. */
  private readonly persisted = new Set<string>();

  /** `trackChanges`: remember what changed for drainChanges() (the live tailer persists it; imports don't). */
  constructor(
    private readonly rows: RowBuilder,
    private readonly trackChanges = true,
  ) {}

  private touch(qid: string, time: number, create: boolean): QueueState {
    let st = this.states.get(qid);
    if (!st || create) {
      // `client=`/`uid=` starts a new queue file: a short id seen before was reused after `removed`.
      st = fresh(time);
      this.states.set(qid, st);
    }
    st.lastSeen = time;
    if (this.trackChanges) this.dirty.add(qid);
    return st;
  }

  private drop(qid: string): void {
    if (this.states.delete(qid) && this.trackChanges) this.dirty.add(qid);
  }

  /** Apply one parsed line; rows it produces are appended to `out`, hard bounces to `suppress`. */
  apply(
    line: string,
    time: number,
    service: string,
    p: ParsedLine,
    out: AcctRecord[],
    suppress: SuppressRequest[],
  ): void {
    switch (p.kind) {
      case 'delivery':
        this.delivery(line, time, service, p, out, suppress);
        break;
      case 'client': {
        const st = this.touch(p.qid, time, true);
        st.client = p.client;
        st.timeQueued = time;
        break;
      }
      case 'pickup':
        this.pickup(time, p);
        break;
      case 'message-id':
        this.touch(p.qid, time, false).messageId = p.text;
        break;
      case 'queued': {
        const st = this.touch(p.qid, time, false);
        st.from = p.from;
        st.size = p.size;
        break;
      }
      case 'expired':
        this.expired(line, time, p, out);
        break;
      case 'reject':
        out.push(this.rows.reject(line, time, p.qid, p.from, p.to, p.client, p.text));
        break;
      case 'removed':
        this.drop(p.qid);
        break;
      default:
        break;
    }
  }

  /** A delivery line's row; a deferred recipient stays pending on the queue file until a final status. */
  private delivery(
    line: string,
    time: number,
    service: string,
    p: ParsedLine,
    out: AcctRecord[],
    suppress: SuppressRequest[],
  ): void {
    const st = this.states.get(p.qid);
    const rec = this.rows.delivery(
      line,
      p.qid,
      {
        time,
        service,
        to: p.to,
        origTo: p.origTo,
        relay: p.relay,
        delay: p.delay,
        dsn: p.dsn,
        status: p.status,
        text: p.text,
      },
      st,
      suppress,
    );
    if (rec) out.push(rec);
    const s = this.touch(p.qid, time, false);
    if (p.status === 'deferred') {
      const pending: PendingRcpt = {
        orcpt: p.origTo,
        dsn: p.dsn,
        diag: rec?.dsnDiag ?? null,
        relay: p.relay,
      };
      if (!s.pending) s.pending = {};
      s.pending[p.to] = pending;
    } else if (s.pending) {
      delete s.pending[p.to];
    }
  }

  private pickup(time: number, p: ParsedLine): void {
    const st = this.touch(p.qid, time, true);
    st.from = p.from;
    st.timeQueued = time;
    if (p.text) {
      // postsuper -r: the message came back under a new id with the old recipients still due.
      const old = this.states.get(p.text);
      if (old) {
        st.pending = old.pending;
        st.timeQueued = old.timeQueued ?? time;
        this.drop(p.text);
      }
    }
  }

  /** Rows for the recipients still pending when Postfix gave up on the queue file. */
  private expired(line: string, time: number, p: ParsedLine, out: AcctRecord[]): void {
    const st = this.states.get(p.qid);
    for (const r of this.rows.expired(line, time, p.qid, st, p.from)) out.push(r);
    if (st) {
      st.pending = null;
      this.touch(p.qid, time, false);
    }
  }

  /** Forget queue files not seen for `ttlMs` (their `removed` line never came). */
  prune(now: number, ttlMs = DEFAULT_STATE_TTL_MS): number {
    let n = 0;
    for (const [qid, st] of this.states) {
      if (now - st.lastSeen > ttlMs) {
        this.drop(qid);
        n++;
      }
    }
    return n;
  }

  /** Load persisted states (daemon start). */
  load(entries: Iterable<[string, QueueState]>): void {
    for (const [qid, st] of entries) {
      this.states.set(qid, st);
      this.persisted.add(qid);
    }
  }

  /** What to write for the changes since the last call: states to upsert, ids to delete. */
  drainChanges(): { upserts: [string, QueueState][]; deletes: string[] } {
    const upserts: [string, QueueState][] = [];
    const deletes: string[] = [];
    for (const qid of this.dirty) {
      const st = this.states.get(qid);
      if (st) {
        upserts.push([qid, st]);
        this.persisted.add(qid);
      } else if (this.persisted.delete(qid)) {
        deletes.push(qid);
      }
    }
    this.dirty.clear();
    return { upserts, deletes };
  }
}
