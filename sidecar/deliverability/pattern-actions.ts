/**
 * What an SMTP reply means for a queue under its `<smtp-pattern-list>`. Plain rules act on a single
 * match, as in PowerMTA: the first rule whose regex matches the reply applies its actions. Threshold rules
 * (`threshold=5%/10m,min-samples=50`) see every reply as a sample and act only when the share of matches
 * over their window reaches the threshold (ratio-trigger.ts).
 */
import type { PatternAction, SmtpPattern, SmtpPatternList } from '../config/model.js';
import { RatioTrigger } from './ratio-trigger.js';

export type ThresholdAction = Extract<PatternAction, { kind: 'threshold' }>;

export function thresholdOf(p: SmtpPattern): ThresholdAction | null {
  return (p.actions.find((a) => a.kind === 'threshold') as ThresholdAction | undefined) ?? null;
}

/** A rule's actions without its threshold marker. */
export function actionsOf(p: SmtpPattern): PatternAction[] {
  return p.actions.filter((a) => a.kind !== 'threshold');
}

/** The first plain (non-threshold) rule matching `reply`, or null. */
export function firstPlainMatch(list: SmtpPatternList | null, reply: string): SmtpPattern | null {
  if (!list) return null;
  for (const p of list.patterns) {
    if (thresholdOf(p)) continue;
    p.pattern.lastIndex = 0;
    if (p.pattern.test(reply)) return p;
  }
  return null;
}

export interface MatchedRule {
  pattern: SmtpPattern;
  actions: PatternAction[];
  /** Set for a threshold rule: the window's counts when it fired. */
  fired?: { samples: number; hits: number; ratio: number };
}

/** One queue's view of its pattern list: the threshold rules' windows live here. */
export class PatternListState {
  readonly list: SmtpPatternList;
  private readonly triggers = new Map<SmtpPattern, RatioTrigger>();

  constructor(list: SmtpPatternList) {
    this.list = list;
    for (const p of list.patterns) {
      const t = thresholdOf(p);
      if (t)
        this.triggers.set(
          p,
          new RatioTrigger({ ratio: t.ratio, windowMs: t.windowMs, minSamples: t.minSamples }),
        );
    }
  }

  /** Rules that act on this reply: the first matching plain rule, then any threshold rule that fired. */
  onReply(reply: string, now: number): MatchedRule[] {
    const out: MatchedRule[] = [];
    const plain = firstPlainMatch(this.list, reply);
    if (plain) out.push({ pattern: plain, actions: actionsOf(plain) });
    for (const [p, trigger] of this.triggers) {
      p.pattern.lastIndex = 0;
      if (trigger.record(p.pattern.test(reply), now)) {
        const s = trigger.state(now);
        out.push({
          pattern: p,
          actions: actionsOf(p),
          fired: { samples: s.samples, hits: s.hits, ratio: s.ratio },
        });
      }
    }
    return out;
  }

  /** Replies per ms seen by the widest threshold window (the base rate when no max-msg-rate is set). */
  observedPerMs(now: number): number {
    let best = 0;
    for (const t of this.triggers.values()) best = Math.max(best, t.state(now).samples / t.spec.windowMs);
    return best;
  }
}
