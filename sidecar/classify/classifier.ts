/**
 * Bounce classifier. Operator rules (`<bounce-category-patterns>`) decide first; otherwise the evidence
 * decides in the order the rule file's header documents: the enhanced status code (a specific one, such
 * as 5.1.1, stands unless a phrase rule says it refines that code), phrase rules (first in file order,
 * refining generic codes such as 5.0.0 or 5.7.1 and bare basic codes), the generic enhanced code, the
 * basic reply code, then what the category means at the SMTP stage the reply answered. Hard (suppress
 * the address) only for bad-mailbox / bad-domain / inactive-mailbox on a final (5xx) reply.
 */
import { join, relative } from 'node:path';
import { type BounceCategory, HARD_CATEGORIES } from '../acct/record.js';
import { packageRoot } from '../common/paths.js';
import { PhraseSet } from './phrases.js';
import { type ParsedReply, parseReply, type SmtpStage } from './reply.js';
import {
  codeMatches,
  type PhraseRule,
  type ReplyRule,
  type RuleFile,
  readRuleFile,
  type StageRule,
  type StatusRule,
} from './rules.js';

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

/** What the caller knows about the reply beyond its text. */
export interface ReplyContext {
  /** The SMTP stage the reply answered (the engine knows it); overrides what a wrapper says. */
  stage?: SmtpStage;
}

export interface PhraseHit {
  rule: string;
  term: string;
  category: BounceCategory;
  /** False when a specific enhanced code of another category stands against it, or the stage does not fit. */
  eligible: boolean;
}

export interface Explanation extends Classification {
  stage: SmtpStage | null;
  stageFrom: 'context' | 'wrapper' | null;
  basic: number | null;
  basicMeaning: string | null;
  enhanced: string | null;
  enhancedMeaning: string | null;
  /** The status rule that matched the enhanced code, and whether phrases may refine it. */
  status: { rule: string; category: BounceCategory; generic: boolean } | null;
  wrappers: string[];
  host: string | null;
  /** The mailbox provider the remote host or the reply's own markers point to, if one is known. */
  provider: string | null;
  phrases: PhraseHit[];
  /** A stage rule that changed the category, if any. */
  stageRule: string | null;
  final: boolean;
}

export interface ClassifierOptions {
  operatorRules?: OperatorRule[];
  /** Rule file instead of the shipped `data/bounce-patterns.txt`. */
  file?: string;
}

export const DEFAULT_RULES_FILE = join(packageRoot, 'data', 'bounce-patterns.txt');

interface CompiledOperator {
  pattern: RegExp;
  category: BounceCategory;
  rule: string;
}

interface Decision {
  category: BounceCategory;
  rule: string;
  final: boolean;
}

/** No code to go by: the MTA's own words say whether it will try again. */
const TRANSIENT_TEXT = /try again|temporar|deferred|will retry|retry later|delayed|try later/i;

export class BounceClassifier {
  private readonly operator: CompiledOperator[];
  private readonly rules: RuleFile;
  private readonly phraseSet: PhraseSet;
  /** Phrase rules with regex terms (by rule index, ascending), tested only ahead of the best literal hit. */
  private readonly regexRules: Array<{ rule: number; terms: Array<{ pattern: RegExp; line: number }> }> = [];
  /** Status rules by subject (`1` for x.1.*), in file order. */
  private readonly statusBySubject = new Map<string, StatusRule[]>();
  /** Term id → the index of its phrase rule, and the line it is written on. */
  private readonly termRule: number[] = [];
  private readonly termLine: number[] = [];

  private constructor(operator: OperatorRule[], rules: RuleFile) {
    // Rule patterns are matched with `test`; a `g`/`y` flag would make results depend on lastIndex.
    const clean = (re: RegExp) =>
      re.global || re.sticky ? new RegExp(re.source, re.flags.replace(/[gy]/g, '')) : re;
    this.operator = operator.map((r, i) => ({
      pattern: clean(r.pattern),
      category: r.category,
      rule: `operator:${r.source ?? `#${i + 1}`}`,
    }));
    this.rules = rules;
    const literals: Array<{ id: number; pieces: string[] }> = [];
    rules.phrases.forEach((r, ri) => {
      const regexes: Array<{ pattern: RegExp; line: number }> = [];
      for (const t of r.terms) {
        if (t.kind === 'regex') regexes.push({ pattern: t.pattern, line: t.line });
        else {
          literals.push({ id: this.termRule.length, pieces: t.pieces });
          this.termRule.push(ri);
          this.termLine.push(t.line);
        }
      }
      if (regexes.length > 0) this.regexRules.push({ rule: ri, terms: regexes });
    });
    this.phraseSet = new PhraseSet(literals);
    for (const s of rules.statuses) {
      const list = this.statusBySubject.get(s.subject) ?? [];
      list.push(s);
      this.statusBySubject.set(s.subject, list);
    }
  }

  static load(opts: ClassifierOptions = {}): BounceClassifier {
    const path = opts.file ?? DEFAULT_RULES_FILE;
    const label = path.startsWith(packageRoot) ? relative(packageRoot, path) : path;
    return new BounceClassifier(opts.operatorRules ?? [], readRuleFile(path, label));
  }

  /** The parsed rule file (tests walk its examples). */
  get ruleFile(): RuleFile {
    return this.rules;
  }

  classify(reply: string, ctx: ReplyContext = {}): Classification {
    const p = parseReply(reply);
    const d = this.decide(p, ctx.stage ?? p.stage, null);
    return { category: d.category, rule: d.rule, hard: d.final && HARD_CATEGORIES.has(d.category) };
  }

  /** Every piece of evidence found and the rule that decided (`freight classify --explain`). */
  explain(reply: string, ctx: ReplyContext = {}): Explanation {
    const p = parseReply(reply);
    const stage = ctx.stage ?? p.stage;
    const status = p.enhanced ? this.statusRule(p) : null;
    const basicRule = p.basic === null ? null : this.replyRule(p.basic);
    const ex: Explanation = {
      category: 'other',
      hard: false,
      rule: 'default',
      stage,
      stageFrom: ctx.stage ? 'context' : p.stage ? 'wrapper' : null,
      basic: p.basic,
      basicMeaning: basicRule?.meaning ?? null,
      enhanced: p.enhanced ? `${p.enhanced.cls}.${p.enhanced.subject}.${p.enhanced.detail}` : null,
      enhancedMeaning: status?.meaning ?? null,
      status: status ? { rule: status.at, category: status.category, generic: status.generic } : null,
      wrappers: p.wrappers,
      host: p.host,
      provider: providerOf(p),
      phrases: [],
      stageRule: null,
      final: false,
    };
    const d = this.decide(p, stage, ex);
    ex.category = d.category;
    ex.rule = d.rule;
    ex.final = d.final;
    ex.hard = d.final && HARD_CATEGORIES.has(d.category);
    return ex;
  }

  private decide(p: ParsedReply, stage: SmtpStage | null, trace: Explanation | null): Decision {
    const final = isFinal(p);
    for (const r of this.operator)
      if (r.pattern.test(p.text)) return { category: r.category, rule: r.rule, final };
    const status = p.enhanced ? this.statusRule(p) : null;
    // A specific code stands against phrase rules of other categories unless they say they refine it.
    const standing = status !== null && !status.generic && !p.enhancedFromWrapper ? status : null;
    const phrase = this.firstPhrase(p, stage, standing, trace);
    let category: BounceCategory = 'other';
    let rule = 'default';
    const decided = phrase ?? status ?? (p.basic === null ? null : this.replyRule(p.basic));
    if (decided) {
      category = decided.category;
      rule = decided.at;
    }
    if (stage !== null) {
      const sr = this.stageRule(stage, category);
      if (sr) {
        category = sr.to;
        if (trace) trace.stageRule = sr.at;
      }
    }
    return { category, rule, final };
  }

  private eligible(
    r: PhraseRule,
    stage: SmtpStage | null,
    standing: StatusRule | null,
    p: ParsedReply,
  ): boolean {
    if (r.stages !== null && (stage === null || !r.stages.includes(stage))) return false;
    if (standing === null || r.category === standing.category) return true;
    for (const c of r.refines) if (codeMatches(c, p.enhanced!)) return true;
    return false;
  }

  /** The first eligible phrase rule in file order; with a trace, records every rule that matched. */
  private firstPhrase(
    p: ParsedReply,
    stage: SmtpStage | null,
    standing: StatusRule | null,
    trace: Explanation | null,
  ): PhraseRule | null {
    const phrases = this.rules.phrases;
    const text = p.plain;
    let best = -1;
    const hits: Array<[number, number]> = [];
    for (const id of this.phraseSet.match(text)) {
      const ri = this.termRule[id]!;
      if (trace) hits.push([ri, this.termLine[id]!]);
      if ((best < 0 || ri < best) && this.eligible(phrases[ri]!, stage, standing, p)) best = ri;
    }
    // Regex terms only matter for rules ahead of the best literal hit (all of them when explaining).
    for (const { rule: ri, terms } of this.regexRules) {
      if (!trace && best >= 0 && best <= ri) break;
      for (const t of terms) {
        if (!t.pattern.test(text)) continue;
        if (trace) hits.push([ri, t.line]);
        if ((best < 0 || ri < best) && this.eligible(phrases[ri]!, stage, standing, p)) best = ri;
        break;
      }
    }
    if (trace) {
      hits.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      for (const [ri, line] of hits) {
        const r = phrases[ri]!;
        const eligible = this.eligible(r, stage, standing, p);
        trace.phrases.push({ rule: r.at, term: `${r.file}:${line}`, category: r.category, eligible });
      }
    }
    return best < 0 ? null : phrases[best]!;
  }

  private statusRule(p: ParsedReply): StatusRule | null {
    for (const s of this.statusBySubject.get(p.enhanced!.subject) ?? [])
      if (codeMatches(s, p.enhanced!)) return s;
    return null;
  }

  private replyRule(code: number): ReplyRule | null {
    const c = String(code);
    for (const r of this.rules.replies) if (r.code === c) return r;
    return null;
  }

  private stageRule(stage: SmtpStage, category: BounceCategory): StageRule | null {
    for (const r of this.rules.stageRules)
      if (r.stages.includes(stage) && r.from.includes(category)) return r;
    return null;
  }
}

/** Providers by their MX host names or the markers their replies carry (explanation only). */
const PROVIDERS: ReadonlyArray<[string, RegExp]> = [
  ['google', /google\.com|googlemail|gsmtp|support\.google\.com/i],
  ['microsoft', /outlook\.com|hotmail|protection\.outlook|exchangelabs|office365|\bS3150\b/i],
  ['yahoo', /yahoo|aol\.com|yahoodns/i],
  ['apple', /icloud|\bme\.com|apple\.com/i],
  ['orange', /orange\.fr|wanadoo|\bOFR\d*_\d+/i],
  ['gmx/web.de', /gmx\.|web\.de|kundenserver|1and1|ionos/i],
  ['t-online', /t-online/i],
  ['comcast', /comcast/i],
  ['cox', /\bcox\.|AUP#/i],
  ['mimecast', /mimecast/i],
  ['proofpoint', /pphosted|proofpoint/i],
  ['amazon ses', /amazonses|amazonaws/i],
  ['zoho', /zoho/i],
  ['tencent', /qq\.com|exmail/i],
];

function providerOf(p: ParsedReply): string | null {
  const where = `${p.host ?? ''} ${p.text}`;
  for (const [name, re] of PROVIDERS) if (re.test(where)) return name;
  return null;
}

/** A 5xx (or 5.x.x with no basic code); with no code at all, final unless the text says it will retry. */
function isFinal(p: ParsedReply): boolean {
  if (p.enhanced?.cls === '4') return false;
  if (p.basic !== null) return p.basic >= 500;
  if (p.enhanced) return p.enhanced.cls === '5';
  return !TRANSIENT_TEXT.test(p.plain);
}
