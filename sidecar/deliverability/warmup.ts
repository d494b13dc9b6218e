/**
 * Warm-up plans as data (config.ts): each (virtual MTA, provider) pair on a plan may send at most the
 * current day's cap; at each `advance-at` tick the pair moves to the next day, unless that day's bounce
 * or deferral rate at that provider was above the plan's threshold (or too little mail went to judge),
 * in which case it holds. Past the last day the plan is finished and no cap applies. Traffic over the cap
 * is not bounced: `take()` says no and the scheduler uses another pool member or waits.
 * State (day, today's counts) is saved to a JSON file so a restart neither resets the curve nor the cap.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import type { Clock, CronHandle, CronStarter } from './clock.js';
import type { WarmupPlan } from './config.js';
import type { EventRecorder } from './events.js';

const log = createLogger('deliverability/warmup');

export type WarmupOutcome = 'delivered' | 'bounced' | 'deferred';

export interface WarmupPairState {
  plan: string;
  vmta: string;
  provider: string;
  day: number;
  /** Cap for today; null when the plan is finished. */
  cap: number | null;
  sentToday: number;
  delivered: number;
  bounced: number;
  deferred: number;
  dayStartedAt: number;
}

interface SavedState {
  version: 1;
  pairs: WarmupPairState[];
}

export function capForDay(plan: WarmupPlan, day: number): number | null {
  const last = plan.days[plan.days.length - 1]!;
  if (day > last.day) return null;
  let cap = plan.days[0]!.cap;
  for (const d of plan.days) if (d.day <= day) cap = d.cap;
  return cap;
}

export class WarmupTracker {
  private plans: WarmupPlan[];
  private readonly clock: Clock;
  private readonly events: EventRecorder;
  private readonly statePath: string | null;
  private readonly pairs = new Map<string, WarmupPairState>();
  private crons: CronHandle[] = [];

  constructor(opts: { plans: WarmupPlan[]; clock: Clock; events: EventRecorder; statePath?: string | null }) {
    this.plans = opts.plans;
    this.clock = opts.clock;
    this.events = opts.events;
    this.statePath = opts.statePath ?? null;
    this.load();
  }

  /** The plan governing (vmta, provider): one naming the provider first, else one for every provider. */
  planFor(vmta: string, provider: string): WarmupPlan | null {
    const p = provider.toLowerCase();
    const mine = this.plans.filter((x) => x.vmtas.includes(vmta));
    return mine.find((x) => x.providers.includes(p)) ?? mine.find((x) => x.providers.length === 0) ?? null;
  }

  /** Messages (vmta, provider) may still send today; Infinity when no plan caps it. */
  remaining(vmta: string, provider: string): number {
    const s = this.pair(vmta, provider);
    if (!s || s.cap === null) return Number.POSITIVE_INFINITY;
    return Math.max(0, s.cap - s.sentToday);
  }

  /** Reserve one message of today's cap before sending; false = over the cap, send elsewhere or wait. */
  take(vmta: string, provider: string): boolean {
    const s = this.pair(vmta, provider);
    if (!s || s.cap === null) return true;
    if (s.sentToday >= s.cap) return false;
    s.sentToday++;
    return true;
  }

  /** The outcome of a message sent under a plan (bounce and deferral rates decide whether to advance). */
  record(vmta: string, provider: string, outcome: WarmupOutcome): void {
    const s = this.pair(vmta, provider);
    if (!s || s.cap === null) return;
    s[outcome]++;
  }

  /** Start of a new warm-up day for `plan` (or every plan): advance or hold each pair. */
  tick(planName?: string): void {
    const now = this.clock.now();
    for (const s of this.pairs.values()) {
      if (planName !== undefined && s.plan !== planName) continue;
      const plan = this.plans.find((p) => p.name === s.plan);
      if (!plan || s.cap === null) continue;
      const outcomes = s.delivered + s.bounced + s.deferred;
      const bounceRate = outcomes ? s.bounced / outcomes : 0;
      const deferralRate = outcomes ? s.deferred / outcomes : 0;
      let hold: string | null = null;
      if (outcomes < plan.holdMinSamples)
        hold = `${outcomes} outcomes today, fewer than ${plan.holdMinSamples}`;
      else if (plan.holdIfBounceRate !== null && bounceRate > plan.holdIfBounceRate)
        hold = `bounce rate ${pct(bounceRate)} above ${pct(plan.holdIfBounceRate)}`;
      else if (plan.holdIfDeferralRate !== null && deferralRate > plan.holdIfDeferralRate)
        hold = `deferral rate ${pct(deferralRate)} above ${pct(plan.holdIfDeferralRate)}`;
      const details = {
        plan: plan.name,
        day: s.day,
        sent: s.sentToday,
        bounceRate: pct(bounceRate),
        deferralRate: pct(deferralRate),
      };
      if (hold === null) {
        s.day++;
        s.cap = capForDay(plan, s.day);
      }
      this.events.record({
        kind: hold === null ? 'warmup-advanced' : 'warmup-held',
        at: now,
        domain: s.provider,
        vmta: s.vmta,
        cause:
          hold ?? `day ${s.day - 1} done: ${s.cap === null ? 'plan finished' : `day ${s.day}, cap ${s.cap}`}`,
        details,
      });
      s.sentToday = 0;
      s.delivered = 0;
      s.bounced = 0;
      s.deferred = 0;
      s.dayStartedAt = now;
    }
    this.save();
  }

  /** Run each plan's `advance-at` schedule. */
  start(startCron: CronStarter): void {
    this.stop();
    for (const plan of this.plans) this.crons.push(startCron(plan.advanceAt, () => this.tick(plan.name)));
  }

  stop(): void {
    for (const c of this.crons) c.stop();
    this.crons = [];
  }

  /** Reload: new plans apply from now on; pairs keep their day. */
  setPlans(plans: WarmupPlan[]): void {
    this.plans = plans;
  }

  list(): WarmupPairState[] {
    return [...this.pairs.values()].map((s) => ({ ...s }));
  }

  /** Persist now (also done at every tick); the engine calls it on shutdown and periodically. */
  save(): void {
    if (!this.statePath) return;
    const data: SavedState = { version: 1, pairs: this.list() };
    const tmp = `${this.statePath}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(data));
      renameSync(tmp, this.statePath);
    } catch (err) {
      log.error('cannot save warm-up state', { path: this.statePath, error: errorMessage(err) });
    }
  }

  private load(): void {
    if (!this.statePath || !existsSync(this.statePath)) return;
    try {
      const data = JSON.parse(readFileSync(this.statePath, 'utf8')) as SavedState;
      for (const s of data.pairs ?? []) this.pairs.set(pairKey(s.vmta, s.provider), s);
    } catch (err) {
      // A damaged state file must not stop the engine; the pairs restart at day 1, which is the safe side.
      log.error('cannot read warm-up state; starting plans at day 1', {
        path: this.statePath,
        error: errorMessage(err),
      });
    }
  }

  private pair(vmta: string, provider: string): WarmupPairState | null {
    const k = pairKey(vmta, provider);
    const existing = this.pairs.get(k);
    const plan = this.planFor(vmta, provider);
    if (!plan) return null;
    if (existing && existing.plan === plan.name) return existing;
    const s: WarmupPairState = {
      plan: plan.name,
      vmta,
      provider: provider.toLowerCase(),
      day: 1,
      cap: capForDay(plan, 1),
      sentToday: 0,
      delivered: 0,
      bounced: 0,
      deferred: 0,
      dayStartedAt: this.clock.now(),
    };
    this.pairs.set(k, s);
    return s;
  }
}

function pairKey(vmta: string, provider: string): string {
  return `${vmta}\u0000${provider.toLowerCase()}`;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}
