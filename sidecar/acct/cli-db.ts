/** Shared by the acct/suppress/classify commands: `--db PATH` or `--config FILE` → the accounting store. */

import { FreightError } from '../common/errors.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { parseDuration } from '../config/units.js';
import { AcctStore } from './store.js';

export const DB_OPTIONS = {
  config: { type: 'string' },
  db: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

export function acctDbPath(values: { config?: string; db?: string }): string {
  if (values.db) return values.db;
  return loadConfig(resolveConfigPath(values.config)).global.acctDb;
}

export function openAcct(values: { config?: string; db?: string }, readonly: boolean): AcctStore {
  return AcctStore.open(acctDbPath(values), { readonly });
}

/** `--since 1h` (a duration back from now) or an ISO time / epoch ms. */
export function parseTimeArg(text: string | undefined, now = Date.now()): number | undefined {
  if (text === undefined) return undefined;
  if (/^\d{10,}$/.test(text)) return Number(text);
  if (/^\d{4}-\d\d-\d\d/.test(text)) {
    const t = Date.parse(text);
    if (Number.isNaN(t)) throw new FreightError('ACCT_BAD_TIME', `not a time: ${text}`);
    return t;
  }
  try {
    return now - parseDuration(text);
  } catch {
    throw new FreightError(
      'ACCT_BAD_TIME',
      `not a duration or time: ${text} (use e.g. 1h, 24h, 7d or 2024-05-01T00:00Z)`,
    );
  }
}
