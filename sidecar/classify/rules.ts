/**
 * Parser for bounce-category rule files: `/regex/ category` lines (also used by the config parser for
 * `<bounce-category-patterns>`), plus `status C.S.D category` and `reply NNN category` lines and `#>`
 * example replies in the shipped data file. Errors read `file:line: reason`.
 */
import { readFileSync } from 'node:fs';
import { BOUNCE_CATEGORIES, type BounceCategory } from '../acct/record.js';
import { FreightError } from '../common/errors.js';

const CATEGORY_SET: ReadonlySet<string> = new Set(BOUNCE_CATEGORIES);

export interface PatternRule {
  pattern: RegExp;
  category: BounceCategory;
  file: string;
  line: number;
  /** `#>` example replies written above the rule (shipped file only). */
  examples: string[];
}

export interface StatusRule {
  /** Class 4/5 or null for either (`x`). */
  cls: string | null;
  subject: string;
  /** Detail, or null for any (`*`). */
  detail: string | null;
  category: BounceCategory;
  file: string;
  line: number;
  examples: string[];
}

export interface ReplyRule {
  code: string;
  category: BounceCategory;
  file: string;
  line: number;
  examples: string[];
}

export interface RuleFile {
  patterns: PatternRule[];
  statuses: StatusRule[];
  replies: ReplyRule[];
}

function category(word: string): BounceCategory | string {
  if (CATEGORY_SET.has(word)) return word as BounceCategory;
  return `unknown bounce category "${word}" (expected one of ${BOUNCE_CATEGORIES.join(', ')})`;
}

/**
 * Parse one `/regex/ category` line. Returns the rule or a reason string; the caller adds `file:line`.
 * The regex is everything between the first and the last `/` before the category, so it may contain `/`.
 */
export function parsePatternLine(text: string): { pattern: RegExp; category: BounceCategory } | string {
  const m = /^\/(.*)\/\s+(\S+)\s*$/.exec(text.trim());
  if (!m) return 'expected /regex/ category';
  if (m[1] === '') return 'empty regular expression';
  const cat = category(m[2]!);
  if (!CATEGORY_SET.has(cat)) return cat;
  try {
    return { pattern: new RegExp(m[1]!, 'i'), category: cat as BounceCategory };
  } catch (err) {
    return `invalid regular expression: ${(err as Error).message}`;
  }
}

/** Parse a whole rule file; throws CLASSIFY_RULES_INVALID listing every bad line as `file:line: reason`. */
export function parseRuleFile(text: string, file: string): RuleFile {
  const out: RuleFile = { patterns: [], statuses: [], replies: [] };
  const errors: string[] = [];
  let examples: string[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const line = raw.trim();
    if (line.startsWith('#>')) {
      examples.push(line.slice(2).trim());
      return;
    }
    if (line === '' || line.startsWith('#')) return;
    const taken = examples;
    examples = [];
    if (line.startsWith('/')) {
      const r = parsePatternLine(line);
      if (typeof r === 'string') errors.push(`${file}:${lineNo}: ${r}`);
      else out.patterns.push({ ...r, file, line: lineNo, examples: taken });
      return;
    }
    const status = /^status\s+([45x])\.(\d{1,3})\.(\d{1,3}|\*)\s+(\S+)$/i.exec(line);
    if (status) {
      const cat = category(status[4]!);
      if (!CATEGORY_SET.has(cat)) errors.push(`${file}:${lineNo}: ${cat}`);
      else
        out.statuses.push({
          cls: status[1]!.toLowerCase() === 'x' ? null : status[1]!,
          subject: status[2]!,
          detail: status[3] === '*' ? null : status[3]!,
          category: cat as BounceCategory,
          file,
          line: lineNo,
          examples: taken,
        });
      return;
    }
    const reply = /^reply\s+([245]\d\d)\s+(\S+)$/i.exec(line);
    if (reply) {
      const cat = category(reply[2]!);
      if (!CATEGORY_SET.has(cat)) errors.push(`${file}:${lineNo}: ${cat}`);
      else
        out.replies.push({
          code: reply[1]!,
          category: cat as BounceCategory,
          file,
          line: lineNo,
          examples: taken,
        });
      return;
    }
    errors.push(`${file}:${lineNo}: expected /regex/ category, status C.S.D category or reply NNN category`);
  });
  if (errors.length > 0) {
    throw new FreightError('CLASSIFY_RULES_INVALID', errors.join('\n'), { file, errors });
  }
  return out;
}

export function readRuleFile(path: string, label = path): RuleFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new FreightError(
      'CLASSIFY_RULES_MISSING',
      `cannot read bounce rules ${path}: ${(err as Error).message}`,
      {
        path,
      },
    );
  }
  return parseRuleFile(text, label);
}
