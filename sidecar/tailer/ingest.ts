/**
 * One maillog line in, accounting rows out: prefix → message shape → correlation → rows. Keeps counts per
 * line kind and a small sample of lines it could not read (never fatal), for the daemon's log and the
 * import summary.
 */
import type { AcctRecord } from '../acct/record.js';
import type { HostPort } from '../config/model.js';
import { Correlator } from './correlate.js';
import { type LineKind, newParsedLine, parseMessage } from './line-parser.js';
import { LogClock, newPrefix, parsePrefix } from './prefix.js';
import { type ReplyClassifier, RowBuilder, type SuppressRequest } from './rows.js';

const SAMPLE_MAX = 20;

export interface IngestStats {
  lines: number;
  rows: number;
  kinds: Partial<Record<LineKind, number>>;
  /** The first few unreadable lines (and how many there were in kinds.unknown). */
  unknownSamples: string[];
}

export interface IngestOptions {
  timeZone: string | null;
  /** Reference time for year-less stamps (now for live logs, the file's mtime for old ones). */
  referenceMs?: number;
  classifier: ReplyClassifier | null;
  engine: HostPort | null;
  /** Track correlation-state changes for persisting them (the live tailer); default false. */
  persistState?: boolean;
}

export class Ingest {
  readonly rows: RowBuilder;
  readonly correlator: Correlator;
  clock: LogClock;
  private readonly prefix = newPrefix();
  private readonly parsed = newParsedLine();
  /** Rows and suppressions produced since the caller last took them. */
  out: AcctRecord[] = [];
  suppress: SuppressRequest[] = [];
  readonly stats: IngestStats = { lines: 0, rows: 0, kinds: {}, unknownSamples: [] };
  private readonly timeZone: string | null;

  constructor(opts: IngestOptions) {
    this.timeZone = opts.timeZone;
    this.clock = new LogClock(opts.timeZone, opts.referenceMs);
    this.rows = new RowBuilder(opts.classifier, opts.engine);
    this.correlator = new Correlator(this.rows, opts.persistState === true);
  }

  /** Start year inference afresh (a new file of an import, read from its own reference time). */
  resetClock(referenceMs: number): void {
    this.clock = new LogClock(this.timeZone, referenceMs);
  }

  private count(kind: LineKind): void {
    const k = this.stats.kinds;
    k[kind] = (k[kind] ?? 0) + 1;
  }

  private unknown(line: string): void {
    this.count('unknown');
    if (this.stats.unknownSamples.length < SAMPLE_MAX) this.stats.unknownSamples.push(line.slice(0, 500));
  }

  /** Feed one line (without its newline). */
  line(line: string): void {
    if (line.length === 0) return;
    this.stats.lines++;
    const pre = this.prefix;
    if (!parsePrefix(line, this.clock, pre)) {
      this.unknown(line);
      return;
    }
    // Other programs share syslog's mail.log (dovecot, opendkim): Postfix names are `name/service`.
    const slash = line.lastIndexOf('/', pre.progEnd);
    if (slash < pre.progStart) {
      this.count('foreign');
      return;
    }
    const kind = parseMessage(line, pre.msgStart, this.parsed);
    if (kind === 'unknown') {
      this.unknown(line);
      return;
    }
    this.count(kind);
    if (kind === 'other') return;
    const before = this.out.length;
    const service = kind === 'delivery' ? line.slice(slash + 1, pre.progEnd) : '';
    this.correlator.apply(line, pre.time, service, this.parsed, this.out, this.suppress);
    this.stats.rows += this.out.length - before;
  }

  /** Feed a block of complete lines (`\n`-separated; a trailing newline is optional). */
  text(text: string): void {
    let start = 0;
    const len = text.length;
    while (start < len) {
      let nl = text.indexOf('\n', start);
      if (nl < 0) nl = len;
      const end = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      this.line(text.slice(start, end));
      start = nl + 1;
    }
  }

  /** Take the rows and suppressions produced so far. */
  take(): { rows: AcctRecord[]; suppress: SuppressRequest[] } {
    const r = { rows: this.out, suppress: this.suppress };
    this.out = [];
    this.suppress = [];
    return r;
  }
}
