/**
 * `freight acct export`: PowerMTA's accounting CSV (exact header, d/b records, RFC 4180 quoting, CRLF)
 * so existing PowerMTA pipelines keep working, or JSON lines with every Freight column.
 */
import type { AcctRow } from './query.js';
import { PMTA_CSV_COLUMNS } from './schema.js';

export { PMTA_CSV_COLUMNS };

/** The record types PowerMTA's CSV export carries. */
export const PMTA_CSV_TYPES = ['d', 'b'];

/** PowerMTA's time format, always in UTC: `2024-05-01 13:45:07+0000`. */
export function pmtaTime(ms: number | null | undefined): string {
  if (ms == null) return '';
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}+0000`;
}

/** RFC 4180: quote a field holding a comma, quote, CR or LF; double embedded quotes. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function pmtaCsvHeader(): string {
  return `${PMTA_CSV_COLUMNS.join(',')}\r\n`;
}

export function pmtaCsvLine(row: AcctRow): string {
  return (
    PMTA_CSV_COLUMNS.map((c) => {
      if (c === 'timeLogged' || c === 'timeQueued') return pmtaTime(row[c] as number | null);
      return csvField(row[c]);
    }).join(',') + '\r\n'
  );
}

export function jsonLine(row: AcctRow): string {
  const { id: _id, ...rest } = row;
  return `${JSON.stringify(rest)}\n`;
}
