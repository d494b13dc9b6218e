/**
 * Bounce classifier (DESIGN §5): operator rules, then the shipped `/regex/ category` rules, then
 * enhanced-status-code rules, then basic-reply-code rules, then `other`. Hard (suppress the address)
 * only for bad-mailbox / bad-domain / inactive-mailbox and never for a 4xx or temporary failure.
 */
import { join, relative } from 'node:path';
import { type BounceCategory, HARD_CATEGORIES } from '../acct/record.js';
import { packageRoot } from '../common/paths.js';
import { type ParsedReply, parseReply } from './reply.js';
import { type PatternRule, type ReplyRule, readRuleFile, type StatusRule } from './rules.js';

export interface OperatorRule {
  pattern: RegExp;
  category: BounceCategory;
  /** Where the rule came from, e.g. `/etc/freight/freight.conf:88`. */
  source?: string;
}

export interface Classification {
  category: BounceCategory;
  hard: boolean;
  /** Which rule decided: `file:line`, `operator:<source>`, or `default`. */
  rule: string;
}

export interface ClassifierOptions {
  operatorRules?: OperatorRule[];
  /** Rule file instead of the shipped `data/bounce-patterns.txt`. */
  file?: string;
}

export const DEFAULT_RULES_FILE = join(packageRoot, 'data', 'bounce-patterns.txt');

interface CompiledPattern {
  pattern: RegExp;
  category: BounceCategory;
  rule: string;
}

export class BounceClassifier {
  private readonly patterns: CompiledPattern[];
  private readonly statuses: StatusRule[];
  private readonly replies: ReplyRule[];
  /** The parsed shipped/loaded file (tests walk its examples). */
  readonly shippedPatterns: readonly PatternRule[];

  private constructor(
    operator: OperatorRule[],
    file: { patterns: PatternRule[]; statuses: StatusRule[]; replies: ReplyRule[] },
  ) {
    // Rule patterns are matched with `test`; a `g`/`y` flag would make results depend on lastIndex.
    const clean = (re: RegExp) =>
      re.global || re.sticky ? new RegExp(re.source, re.flags.replace(/[gy]/g, '')) : re;
    this.patterns = [
      ...operator.map((r, i) => ({
        pattern: clean(r.pattern),
        category: r.category,
        rule: `operator:${r.source ?? `#${i + 1}`}`,
      })),
      ...file.patterns.map((r) => ({
        pattern: r.pattern,
        category: r.category,
        rule: `${r.file}:${r.line}`,
      })),
    ];
    this.statuses = file.statuses;
    this.replies = file.replies;
    this.shippedPatterns = file.patterns;
  }

  static load(opts: ClassifierOptions = {}): BounceClassifier {
    const path = opts.file ?? DEFAULT_RULES_FILE;
    const label = path.startsWith(packageRoot) ? relative(packageRoot, path) : path;
    return new BounceClassifier(opts.operatorRules ?? [], readRuleFile(path, label));
  }

  classify(reply: string): Classification {
    const parsed = parseReply(reply);
    const { category, rule } = this.decide(parsed);
    return { category, rule, hard: HARD_CATEGORIES.has(category) && !parsed.transient };
  }

  private decide(p: ParsedReply): { category: BounceCategory; rule: string } {
    for (const r of this.patterns) if (r.pattern.test(p.text)) return r;
    if (p.enhanced) {
      const e = p.enhanced;
      for (const s of this.statuses) {
        if (
          (s.cls === null || s.cls === e.cls) &&
          s.subject === e.subject &&
          (s.detail === null || s.detail === e.detail)
        ) {
          return { category: s.category, rule: `${s.file}:${s.line}` };
        }
      }
    }
    if (p.basic !== null) {
      const code = String(p.basic);
      for (const r of this.replies)
        if (r.code === code) return { category: r.category, rule: `${r.file}:${r.line}` };
    }
    return { category: 'other', rule: 'default' };
  }
}
