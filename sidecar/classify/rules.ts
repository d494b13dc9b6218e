/**
 * Parser for bounce rule files (grammar in the header of data/bounce-patterns.txt):
 *
 *   phrase CATEGORY [refines CODE,…] [at STAGE,…]   a phrase rule; its terms follow on indented lines:
 *     "literal" … "literal"                           pieces that must occur in this order (lower-case)
 *     /regex/                                         matched ignoring case
 *   /regex/ CATEGORY                                  a one-term phrase rule (the operator-rule form)
 *   status C.S.D CATEGORY [generic] "meaning"         enhanced status code (C may be x, D may be *)
 *   reply NNN CATEGORY "meaning"                      basic reply code
 *   stage STAGE,… CATEGORY,… => CATEGORY              what a category means at a stage
 *   #> reply                                          an example for the rule below (the tests run them)
 *   # from: origin                                    where the rule below comes from
 *
 * Errors read `file:line: reason`; every bad line is reported at once.
 */
import { readFileSync } from 'node:fs';
import { BOUNCE_CATEGORIES, type BounceCategory } from '../acct/record.js';
import { FreightError } from '../common/errors.js';
import { fold, SMTP_STAGES, type SmtpStage } from './reply.js';

const CATEGORY_SET: ReadonlySet<string> = new Set(BOUNCE_CATEGORIES);
const STAGE_SET: ReadonlySet<string> = new Set(SMTP_STAGES);

interface Located {
  file: string;
  line: number;
  /** `file:line`, as classifications name the deciding rule. */
  at: string;
  /** `#>` example replies written above the rule. */
  examples: string[];
}

/** `5.1.1`, `x.2.*`: class null = 4 or 5, detail null = any. */
export interface CodePattern {
  cls: string | null;
  subject: string;
  detail: string | null;
}

export type PhraseTerm =
  | { kind: 'literal'; pieces: string[]; line: number }
  | { kind: 'regex'; pattern: RegExp; line: number };

export interface PhraseRule extends Located {
  category: BounceCategory;
  /** Specific enhanced codes this rule may override (generic codes it always may). */
  refines: CodePattern[];
  /** Only when the reply is known to answer one of these stages (null: any stage, or unknown). */
  stages: SmtpStage[] | null;
  terms: PhraseTerm[];
  from: string[];
}

export interface StatusRule extends Located, CodePattern {
  category: BounceCategory;
  /** Generic codes (x.0.0, x.7.1 …) say little: phrase rules refine them. */
  generic: boolean;
  meaning: string;
}

export interface ReplyRule extends Located {
  code: string;
  category: BounceCategory;
  meaning: string;
}

export interface StageRule extends Located {
  stages: SmtpStage[];
  from: BounceCategory[];
  to: BounceCategory;
}

export interface RuleFile {
  phrases: PhraseRule[];
  statuses: StatusRule[];
  replies: ReplyRule[];
  stageRules: StageRule[];
}

function category(word: string): BounceCategory | string {
  if (CATEGORY_SET.has(word)) return word as BounceCategory;
  return `unknown bounce category "${word}" (expected one of ${BOUNCE_CATEGORIES.join(', ')})`;
}

function categories(list: string): BounceCategory[] | string {
  const out: BounceCategory[] = [];
  for (const w of list.split(',')) {
    const c = category(w.trim());
    if (!CATEGORY_SET.has(c)) return c;
    out.push(c as BounceCategory);
  }
  return out;
}

function stages(list: string): SmtpStage[] | string {
  const out = list.split(',').map((s) => s.trim());
  const bad = out.find((s) => !STAGE_SET.has(s));
  return bad === undefined
    ? (out as SmtpStage[])
    : `unknown stage "${bad}" (expected ${SMTP_STAGES.join(', ')})`;
}

export function parseCode(text: string): CodePattern | null {
  const m = /^([45x])\.(\d{1,3})\.(\d{1,3}|\*)$/i.exec(text);
  if (!m) return null;
  return {
    cls: m[1]!.toLowerCase() === 'x' ? null : m[1]!,
    subject: m[2]!,
    detail: m[3] === '*' ? null : m[3]!,
  };
}

export function codeMatches(p: CodePattern, e: { cls: string; subject: string; detail: string }): boolean {
  return (
    (p.cls === null || p.cls === e.cls) &&
    p.subject === e.subject &&
    (p.detail === null || p.detail === e.detail)
  );
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

/** A term line: `"a" … "b"` (or `...`) or `/regex/`. */
function parseTerm(text: string, line: number): PhraseTerm | string {
  if (text.startsWith('/')) {
    if (!text.endsWith('/') || text.length < 3) return 'expected /regex/';
    try {
      return { kind: 'regex', pattern: new RegExp(text.slice(1, -1), 'i'), line };
    } catch (err) {
      return `invalid regular expression: ${(err as Error).message}`;
    }
  }
  const pieces: string[] = [];
  const re = /\s*"((?:[^"\\]|\\.)+)"\s*(?:(?:…|\.\.\.)|$)/y;
  let at = 0;
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) return 'expected "phrase" or "phrase" … "phrase"';
    const piece = m[1]!.replace(/\\(.)/g, '$1');
    if (fold(piece) !== piece) return `phrase "${piece}" must be written lower-case without accents`;
    pieces.push(piece);
    at = re.lastIndex;
  }
  return pieces.length > 0 ? { kind: 'literal', pieces, line } : 'empty phrase';
}

function parseHeader(rest: string): Omit<PhraseRule, keyof Located | 'terms' | 'from'> | string {
  const m = /^(\S+)(?:\s+refines\s+(\S+))?(?:\s+at\s+(\S+))?\s*$/.exec(rest);
  if (!m) return 'expected phrase CATEGORY [refines CODE,…] [at STAGE,…]';
  const cat = category(m[1]!);
  if (!CATEGORY_SET.has(cat)) return cat;
  const refines: CodePattern[] = [];
  for (const c of m[2]?.split(',') ?? []) {
    const p = parseCode(c);
    if (!p) return `bad status code "${c}" after refines (expected like 5.1.1 or x.2.*)`;
    refines.push(p);
  }
  let at: SmtpStage[] | null = null;
  if (m[3]) {
    const s = stages(m[3]);
    if (typeof s === 'string') return s;
    at = s;
  }
  return { category: cat as BounceCategory, refines, stages: at };
}

function parseStatusOrReply(line: string, loc: Located): StatusRule | ReplyRule | string | null {
  const status = /^status\s+(\S+)\s+(\S+)(\s+generic)?\s+"([^"]*)"$/.exec(line);
  if (status) {
    const code = parseCode(status[1]!);
    if (!code) return `bad status code "${status[1]}"`;
    const cat = category(status[2]!);
    if (!CATEGORY_SET.has(cat)) return cat;
    return { ...code, ...loc, category: cat as BounceCategory, generic: !!status[3], meaning: status[4]! };
  }
  const reply = /^reply\s+([245]\d\d)\s+(\S+)\s+"([^"]*)"$/.exec(line);
  if (reply) {
    const cat = category(reply[2]!);
    if (!CATEGORY_SET.has(cat)) return cat;
    return { code: reply[1]!, category: cat as BounceCategory, meaning: reply[3]!, ...loc };
  }
  return null;
}

function parseStageRule(line: string, loc: Located): StageRule | string {
  const m = /^stage\s+(\S+)\s+(\S+)\s+=>\s+(\S+)$/.exec(line);
  if (!m) return 'expected stage STAGE,… CATEGORY,… => CATEGORY';
  const s = stages(m[1]!);
  if (typeof s === 'string') return s;
  const from = categories(m[2]!);
  if (typeof from === 'string') return from;
  const to = category(m[3]!);
  if (!CATEGORY_SET.has(to)) return to;
  return { stages: s, from, to: to as BounceCategory, ...loc };
}

/** Parse a whole rule file; throws CLASSIFY_RULES_INVALID listing every bad line as `file:line: reason`. */
export function parseRuleFile(text: string, file: string): RuleFile {
  const out: RuleFile = { phrases: [], statuses: [], replies: [], stageRules: [] };
  const errors: string[] = [];
  let examples: string[] = [];
  let from: string[] = [];
  let open: PhraseRule | null = null;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = raw.trim();
    const lineNo = i + 1;
    const err = (reason: string) => errors.push(`${file}:${lineNo}: ${reason}`);
    if (line.startsWith('#>')) examples.push(line.slice(2).trim());
    else if (line.startsWith('# from:')) from.push(line.slice(7).trim());
    if (line === '' || line.startsWith('#')) continue;
    if (open && /^\s/.test(raw) && (line.startsWith('"') || line.startsWith('/'))) {
      const t = parseTerm(line, lineNo);
      if (typeof t === 'string') err(t);
      else open.terms.push(t);
      continue;
    }
    if (open && open.terms.length === 0) errors.push(`${file}:${open.line}: phrase rule without terms`);
    open = null;
    const loc: Located = { file, line: lineNo, at: `${file}:${lineNo}`, examples };
    const origin = from;
    examples = [];
    from = [];
    if (line.startsWith('phrase ')) {
      const h = parseHeader(line.slice(7).trim());
      if (typeof h === 'string') err(h);
      else {
        open = { ...h, ...loc, terms: [], from: origin };
        out.phrases.push(open);
      }
    } else if (line.startsWith('/')) {
      const r = parsePatternLine(line);
      if (typeof r === 'string') err(r);
      else
        out.phrases.push({
          ...loc,
          category: r.category,
          refines: [],
          stages: null,
          terms: [{ kind: 'regex', pattern: r.pattern, line: lineNo }],
          from: origin,
        });
    } else if (line.startsWith('stage ')) {
      const r = parseStageRule(line, loc);
      if (typeof r === 'string') err(r);
      else out.stageRules.push(r);
    } else {
      const r = parseStatusOrReply(line, loc);
      if (typeof r === 'string') err(r);
      else if (r === null) err('expected phrase, /regex/ category, status, reply or stage');
      else if ('code' in r) out.replies.push(r);
      else out.statuses.push(r);
    }
  }
  if (open && open.terms.length === 0) errors.push(`${file}:${open.line}: phrase rule without terms`);
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
