/**
 * Reader for the bounce corpus: data/bounce-corpus/{train,heldout}/<group>.tsv and regression.tsv, each
 * row `category<TAB>format<TAB>reply<TAB>source<TAB>edited` after `#` header lines. The regression set
 * may still be the older three-column data/bounce-corpus.tsv (`category<TAB>reply<TAB>source`).
 * Bad rows are reported together as `file:line: reason`; nothing is silently dropped.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BOUNCE_CATEGORIES, type BounceCategory } from '../acct/record.js';
import { FreightError } from '../common/errors.js';

export const CORPUS_FORMATS = [
  'postfix',
  'exim',
  'sendmail',
  'qmail',
  'exchange',
  'gmail',
  'ses',
  'zoho',
  'cisco',
  'microsoft',
  'yahoo',
  'other-mta',
  'no-code',
  'plain',
] as const;

export type CorpusSide = 'train' | 'heldout' | 'regression';

export interface CorpusRow {
  category: BounceCategory;
  format: string;
  reply: string;
  source: string;
  edited: boolean;
  side: CorpusSide;
  /** File name without `.tsv` (for regression: `regression`). */
  group: string;
}

const CATEGORY_SET: ReadonlySet<string> = new Set(BOUNCE_CATEGORIES);
const FORMAT_SET: ReadonlySet<string> = new Set(CORPUS_FORMATS);

function parseRow(cols: string[], where: string, side: CorpusSide, group: string): CorpusRow | string {
  const legacy = cols.length === 3;
  if (!legacy && cols.length !== 5) return `${where}: expected 5 tab-separated columns, got ${cols.length}`;
  const [category, format, reply, source, edited] = legacy
    ? [cols[0]!, 'plain', cols[1]!, cols[2]!, 'no']
    : (cols as [string, string, string, string, string]);
  if (!CATEGORY_SET.has(category)) return `${where}: unknown category "${category}"`;
  if (!FORMAT_SET.has(format)) return `${where}: unknown format "${format}"`;
  if (reply.trim() === '') return `${where}: empty reply`;
  if (source.trim() === '') return `${where}: no source`;
  if (edited !== 'yes' && edited !== 'no') return `${where}: edited must be yes or no, got "${edited}"`;
  return {
    category: category as BounceCategory,
    format,
    reply,
    source: source.trim(),
    edited: edited === 'yes',
    side,
    group,
  };
}

export function readCorpusFile(path: string, label: string, side: CorpusSide, group: string): CorpusRow[] {
  const rows: CorpusRow[] = [];
  const errors: string[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '' || line.startsWith('#')) return;
      const r = parseRow(line.replace(/\r$/, '').split('\t'), `${label}:${i + 1}`, side, group);
      if (typeof r === 'string') errors.push(r);
      else rows.push(r);
    });
  if (errors.length > 0)
    throw new FreightError('CLASSIFY_CORPUS_INVALID', errors.join('\n'), { path, errors });
  return rows;
}

/** Every row of one side (`train`, `heldout`) from `<root>/data/bounce-corpus/<side>/*.tsv`. */
export function readCorpusSide(root: string, side: 'train' | 'heldout'): CorpusRow[] {
  const dir = join(root, 'data', 'bounce-corpus', side);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.tsv'))
    .sort()
    .flatMap((f) => readCorpusFile(join(dir, f), `data/bounce-corpus/${side}/${f}`, side, f.slice(0, -4)));
}

/** The regression set: data/bounce-corpus/regression.tsv, or the older data/bounce-corpus.tsv. */
export function readRegressionSet(root: string): CorpusRow[] {
  for (const rel of ['data/bounce-corpus/regression.tsv', 'data/bounce-corpus.tsv']) {
    const path = join(root, rel);
    if (existsSync(path)) return readCorpusFile(path, rel, 'regression', 'regression');
  }
  return [];
}

/** The project a source belongs to: `owner/repo` for GitHub, the host name (without www.) for a URL. */
export function sourceProject(source: string): string {
  const gh =
    /^github:([^/]+\/[^/@]+)/.exec(source) ?? /^https?:\/\/github\.com\/([^/]+\/[^/#?]+)/.exec(source);
  if (gh) return `github:${gh[1]!.toLowerCase()}`;
  const url = /^https?:\/\/(?:www\.)?([^/:?#]+)/i.exec(source);
  return url ? url[1]!.toLowerCase() : source;
}
