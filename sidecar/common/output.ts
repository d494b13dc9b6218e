/** Output helpers shared by every read command: aligned tables for people, JSON for scripts. */

export type Row = Record<string, unknown>;

function cell(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(2);
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Render rows as an aligned text table; numbers right-aligned. */
export function formatTable(rows: Row[], columns?: string[]): string {
  const cols = columns ?? (rows[0] ? Object.keys(rows[0]) : []);
  if (cols.length === 0) return '';
  const text = rows.map((r) => cols.map((c) => cell(r[c])));
  const numeric = cols.map(
    (c) => rows.length > 0 && rows.every((r) => typeof r[c] === 'number' || r[c] == null),
  );
  const widths = cols.map((c, i) => Math.max(c.length, ...text.map((t) => t[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(cols), ...text.map(line)].join('\n') + '\n';
}

export function printRows(rows: Row[], opts: { json: boolean; columns?: string[] }): void {
  if (opts.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  else if (rows.length === 0) process.stdout.write('(none)\n');
  else process.stdout.write(formatTable(rows, opts.columns));
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Print an error for a CLI user: one line on stderr, never a stack trace. */
export function fail(message: string, code = 1): number {
  process.stderr.write(`freight: ${message}\n`);
  return code;
}
