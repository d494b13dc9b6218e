/** The small value types that the config's parsers produce and every part of the config shares. */

/** Where a value came from: `file:line`, or 'default' for a built-in. */
export type Origin = { file: string; line: number } | 'default';

export interface HostPort {
  host: string;
  port: number;
}

/** `3500/h` → { count: 3500, perMs: 3_600_000 }. */
export interface Rate {
  count: number;
  perMs: number;
}
