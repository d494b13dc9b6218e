/**
 * The syslog prefix of a maillog line: timestamp, host, program and pid, in the four shapes a Postfix
 * log arrives in — BSD syslog (`Mar  5 06:26:05`), Postfix's own maillog_file (`Mar 05 06:26:05`),
 * RFC 3339 high precision (`2026-03-05T06:26:05.404714+01:00`) and RFC 5424 (`<22>1 2026-… host app pid - -`).
 * Parsing fills a reused object with indexes into the line so the hot path allocates nothing.
 */

/** Filled by parsePrefix; `msgStart` is where the program's own text begins. */
export interface LinePrefix {
  time: number;
  hostStart: number;
  hostEnd: number;
  progStart: number;
  progEnd: number;
  pid: number;
  msgStart: number;
}

export function newPrefix(): LinePrefix {
  return { time: 0, hostStart: 0, hostEnd: 0, progStart: 0, progEnd: 0, pid: 0, msgStart: 0 };
}

const MONTHS = new Map<number, number>();
for (const [i, m] of [
  'Jan',
  'Feb',
  'Mar',
  'Apr',
  'May',
  'Jun',
  'Jul',
  'Aug',
  'Sep',
  'Oct',
  'Nov',
  'Dec',
].entries()) {
  MONTHS.set((m.charCodeAt(0) << 16) | (m.charCodeAt(1) << 8) | m.charCodeAt(2), i);
}

function digit(s: string, i: number): number {
  const c = s.charCodeAt(i) - 48;
  return c >= 0 && c <= 9 ? c : -1000;
}

function d2(s: string, i: number): number {
  return digit(s, i) * 10 + digit(s, i + 1);
}

/**
 * Converts wall-clock times of one IANA zone to epoch ms, and infers the year of year-less syslog
 * stamps: the first line takes the reference time's year (the previous one if its month lies ahead),
 * and a month that drops by more than six (Dec → Jan) means New Year passed.
 */
export class LogClock {
  private readonly fmt: Intl.DateTimeFormat;
  private readonly offsets = new Map<number, number>();
  private year: number;
  private readonly refMonth: number;
  private lastMonth = -1;

  constructor(timeZone: string | null, referenceMs: number = Date.now()) {
    this.fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: timeZone ?? undefined,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    const ref = this.wallParts(referenceMs);
    this.year = ref.year;
    this.refMonth = ref.month;
  }

  private wallParts(ms: number): { year: number; month: number; wallUtc: number } {
    const p: Record<string, number> = {};
    for (const part of this.fmt.formatToParts(new Date(ms)))
      if (part.type !== 'literal') p[part.type] = Number(part.value);
    const wallUtc = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
    return { year: p.year!, month: p.month! - 1, wallUtc };
  }

  /** Zone offset (ms) in force at a wall-clock hour, cached per hour; DST gaps resolve forward. */
  private offsetAt(wallHourUtc: number): number {
    let off = this.offsets.get(wallHourUtc);
    if (off === undefined) {
      const guess = wallHourUtc - (this.wallParts(wallHourUtc).wallUtc - wallHourUtc);
      off = this.wallParts(guess).wallUtc - guess;
      this.offsets.set(wallHourUtc, off);
    }
    return off;
  }

  private lastKey = -1;
  private lastBase = 0;

  /** Epoch ms of a wall-clock time in this zone (month 0-based); consecutive lines share the hour's base. */
  wallToEpoch(year: number, month: number, day: number, h: number, mi: number, s: number): number {
    const key = ((year * 12 + month) * 32 + day) * 24 + h;
    if (key !== this.lastKey) {
      const hour = Date.UTC(year, month, day, h);
      this.lastBase = hour - this.offsetAt(hour);
      this.lastKey = key;
    }
    return this.lastBase + (mi * 60 + s) * 1000;
  }

  /** The year for a year-less stamp in `month`, tracking New Year across a stream of lines. */
  yearFor(month: number): number {
    if (this.lastMonth < 0) {
      if (month > this.refMonth) this.year--;
    } else if (this.lastMonth - month > 6) {
      this.year++;
    } else if (month - this.lastMonth > 6) {
      // A late line from last December after January's lines: belongs to the previous year.
      return this.year - 1;
    }
    this.lastMonth = month;
    return this.year;
  }
}

/** Parse an RFC 3339 stamp at `i`; returns the index after it, or -1. Sets out.time. */
function rfc3339(line: string, i: number, out: LinePrefix): number {
  const year = digit(line, i) * 1000 + digit(line, i + 1) * 100 + d2(line, i + 2);
  const month = d2(line, i + 5);
  const day = d2(line, i + 8);
  const h = d2(line, i + 11);
  const mi = d2(line, i + 14);
  const s = d2(line, i + 17);
  if (year < 0 || month < 1 || day < 1 || h < 0 || mi < 0 || s < 0 || line.charCodeAt(i + 10) !== 84 /* T */)
    return -1;
  let p = i + 19;
  let ms = 0;
  if (line.charCodeAt(p) === 46 /* . */) {
    p++;
    let scale = 100;
    for (let c = digit(line, p); c >= 0; c = digit(line, ++p)) {
      ms += c * scale;
      scale /= 10;
    }
  }
  let offset = 0;
  const z = line.charCodeAt(p);
  if (z === 90 /* Z */ || z === 122) {
    p++;
  } else if (z === 43 /* + */ || z === 45 /* - */) {
    const oh = d2(line, p + 1);
    const om = d2(line, p + 4);
    if (oh < 0 || om < 0) return -1;
    offset = (z === 43 ? 1 : -1) * (oh * 60 + om) * 60_000;
    p += 6;
  } else {
    return -1;
  }
  out.time = Date.UTC(year, month - 1, day, h, mi, s) + Math.floor(ms) - offset;
  return p;
}

/** Parse `host program[pid]: ` starting at `p`; fills out and returns false if the shape is wrong. */
function hostProgram(line: string, p: number, out: LinePrefix): boolean {
  while (line.charCodeAt(p) === 32) p++;
  const hostEnd = line.indexOf(' ', p);
  if (hostEnd < 0) return false;
  out.hostStart = p;
  out.hostEnd = hostEnd;
  const progStart = hostEnd + 1;
  const colon = line.indexOf(': ', progStart);
  if (colon < 0) return false;
  out.progStart = progStart;
  out.msgStart = colon + 2;
  if (line.charCodeAt(colon - 1) === 93 /* ] */) {
    const open = line.lastIndexOf('[', colon);
    if (open < progStart) return false;
    out.progEnd = open;
    out.pid = Number(line.slice(open + 1, colon - 1)) || 0;
  } else {
    out.progEnd = colon;
    out.pid = 0;
  }
  return out.progEnd > progStart && line.indexOf(' ', progStart) >= out.progEnd;
}

/** RFC 5424: `<PRI>VER TIMESTAMP HOST APP PROCID MSGID SD [MSG]`. */
function rfc5424(line: string, out: LinePrefix): boolean {
  const gt = line.indexOf('>');
  if (gt < 2 || gt > 4) return false;
  let p = line.indexOf(' ', gt);
  if (p < 0) return false;
  p++;
  if (line.charCodeAt(p) === 45 /* - (no time) */) return false;
  p = rfc3339(line, p, out);
  if (p < 0 || line.charCodeAt(p) !== 32) return false;
  const fields: number[] = [];
  for (let k = 0; k < 4; k++) {
    const start = p + 1;
    const end = line.indexOf(' ', start);
    if (end < 0) return false;
    fields.push(start, end);
    p = end;
  }
  out.hostStart = fields[0]!;
  out.hostEnd = fields[1]!;
  out.progStart = fields[2]!;
  out.progEnd = fields[3]!;
  out.pid = Number(line.slice(fields[4]!, fields[5]!)) || 0;
  p = fields[7]! + 1;
  if (line.charCodeAt(p) === 45) {
    p++;
  } else if (line.charCodeAt(p) === 91 /* [ */) {
    // Structured data: one or more [..] elements; `]` inside a quoted value is escaped as `\]`.
    while (line.charCodeAt(p) === 91) {
      let q = p + 1;
      for (;;) {
        q = line.indexOf(']', q);
        if (q < 0) return false;
        if (line.charCodeAt(q - 1) !== 92) break;
        q++;
      }
      p = q + 1;
    }
  } else {
    return false;
  }
  if (line.charCodeAt(p) === 32) p++;
  if (line.charCodeAt(p) === 0xfeff) p++;
  out.msgStart = p;
  return true;
}

/** Parse the prefix of `line` into `out`. Returns false for a line of no known shape. */
export function parsePrefix(line: string, clock: LogClock, out: LinePrefix): boolean {
  const c0 = line.charCodeAt(0);
  if (c0 === 60 /* < */) return rfc5424(line, out);
  if (c0 >= 48 && c0 <= 57) {
    const p = rfc3339(line, 0, out);
    return p > 0 && hostProgram(line, p, out);
  }
  // `Mmm dd HH:MM:SS` (BSD pads the day with a space, maillog_file with a zero).
  const month = MONTHS.get((c0 << 16) | (line.charCodeAt(1) << 8) | line.charCodeAt(2));
  if (month === undefined || line.charCodeAt(3) !== 32) return false;
  const day = line.charCodeAt(4) === 32 ? digit(line, 5) : d2(line, 4);
  const h = d2(line, 7);
  const mi = d2(line, 10);
  const s = d2(line, 13);
  if (day < 1 || h < 0 || mi < 0 || s < 0 || line.charCodeAt(15) !== 32) return false;
  out.time = clock.wallToEpoch(clock.yearFor(month), month, day, h, mi, s);
  return hostProgram(line, 16, out);
}
