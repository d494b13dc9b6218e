/**
 * The one object the engine's scheduler talks to about deliverability: it feeds every SMTP reply in,
 * applies what the queue's pattern list says (queue mode, source IP disabling, rate cuts) and hands back
 * the per-attempt actions only the scheduler can carry out (bounce the recipient or the queue, try the
 * next MX, defer the queue). Before connecting, the scheduler asks which settings are in force and
 * whether the source may send.
 */
import type { DomainSettings, FreightConfig, Rate } from '../config/model.js';
import type { Clock } from './clock.js';
import type { EventRecorder } from './events.js';
import { PatternListState } from './pattern-actions.js';
import { effectiveForMode, type ModeSettings, type QueueMode, QueueModes } from './queue-mode.js';
import { type AimdOptions, AimdRate } from './ratio-trigger.js';
import { SourceIpState } from './source-ip-state.js';

export interface QueueRef {
  /** Queue domain (after mx-rollup / queue-to). */
  domain: string;
  vmta: string;
  sourceIp?: string | null;
}

/** What the scheduler must do with the attempt that produced the reply. */
export interface ReplyActions {
  bounceRcpt: boolean;
  bounceQueue: boolean;
  skipMx: boolean;
  deferQueue: boolean;
  /** The source was disabled for this domain: move the queue's work to other pool members. */
  sourceDisabled: boolean;
  /** The queue's mode after this reply. */
  mode: QueueMode;
}

export interface EffectiveSettings extends ModeSettings {
  mode: QueueMode;
}

export class DeliverabilityReactor {
  readonly modes: QueueModes;
  readonly sources: SourceIpState;
  private config: FreightConfig;
  private readonly clock: Clock;
  private readonly events: EventRecorder;
  private readonly aimdOpts: AimdOptions;
  private readonly lists = new Map<string, PatternListState>();
  private readonly rates = new Map<string, AimdRate>();

  constructor(opts: { config: FreightConfig; clock: Clock; events: EventRecorder; aimd?: AimdOptions }) {
    this.config = opts.config;
    this.clock = opts.clock;
    this.aimdOpts = opts.aimd ?? {};
    this.modes = new QueueModes(opts.clock, opts.events);
    this.sources = new SourceIpState(opts.clock, opts.events);
    this.events = opts.events;
  }

  /** New config (reload): pattern windows start afresh; modes and disabled sources carry over. */
  setConfig(config: FreightConfig): void {
    this.config = config;
    this.lists.clear();
  }

  /** Call with every SMTP reply a queue gets (connect, MAIL, RCPT, DATA) and the queue's settings. */
  onReply(q: QueueRef, reply: string, settings: DomainSettings): ReplyActions {
    const out: ReplyActions = {
      bounceRcpt: false,
      bounceQueue: false,
      skipMx: false,
      deferQueue: false,
      sourceDisabled: false,
      mode: this.modes.mode(q.domain, q.vmta),
    };
    const state = this.listState(q, settings);
    if (!state) return out;
    const now = this.clock.now();
    for (const rule of state.onReply(reply, now)) {
      if (rule.fired) {
        const rate = this.rateFor(q).decrease(now, settings.maxMsgRate, state.observedPerMs(now));
        this.events.record({
          kind: 'rate-decreased',
          at: now,
          domain: q.domain,
          vmta: q.vmta,
          sourceIp: q.sourceIp ?? null,
          cause: reply,
          details: {
            rule: rule.pattern.pattern.source,
            ratio: `${(rule.fired.ratio * 100).toFixed(1)}%`,
            samples: rule.fired.samples,
            maxMsgRate: `${rate.count}/h`,
          },
        });
      }
      for (const a of rule.actions) {
        switch (a.kind) {
          case 'mode':
            if (a.mode === 'backoff')
              this.modes.backoff(q.domain, q.vmta, reply, settings.backoffToNormalAfter);
            else this.modes.normal(q.domain, q.vmta, reply);
            break;
          case 'disable-source-ip':
            this.sources.disable({
              vmta: q.vmta,
              sourceIp: q.sourceIp ?? null,
              domain: q.domain,
              cause: 'pattern',
              reason: reply,
              reenableAfter: a.reenableAfter,
            });
            out.sourceDisabled = true;
            break;
          case 'bounce-rcpt':
            out.bounceRcpt = true;
            break;
          case 'bounce-queue':
            out.bounceQueue = true;
            break;
          case 'skip-mx':
            out.skipMx = true;
            break;
          case 'defer-queue':
            out.deferQueue = true;
            break;
          case 'threshold':
            break;
        }
      }
    }
    out.mode = this.modes.mode(q.domain, q.vmta);
    return out;
  }

  /** Settings in force for the queue now: backoff twins in backoff, and any AIMD cut of the rate. */
  effective(q: QueueRef, settings: DomainSettings): EffectiveSettings {
    const mode = this.modes.mode(q.domain, q.vmta);
    const base = effectiveForMode(mode, settings);
    const cut = this.rates.get(key(q))?.limit(this.clock.now(), base.maxMsgRate) ?? null;
    return { ...base, maxMsgRate: slower(base.maxMsgRate, cut), mode };
  }

  /** Before opening a connection: may this vmta's source IP send to the domain? */
  isSourceDisabled(vmta: string, domain: string): boolean {
    return this.sources.isDisabled(vmta, domain);
  }

  close(): void {
    this.modes.close();
    this.sources.close();
  }

  private listState(q: QueueRef, settings: DomainSettings): PatternListState | null {
    const name = settings.smtpPatternList;
    const list = name ? this.config.patternLists.get(name) : undefined;
    if (!list) return null;
    const k = key(q);
    let state = this.lists.get(k);
    if (!state || state.list !== list) {
      state = new PatternListState(list);
      this.lists.set(k, state);
    }
    return state;
  }

  private rateFor(q: QueueRef): AimdRate {
    const k = key(q);
    let r = this.rates.get(k);
    if (!r) {
      r = new AimdRate(this.aimdOpts);
      this.rates.set(k, r);
    }
    return r;
  }
}

function key(q: QueueRef): string {
  return `${q.domain.toLowerCase()}/${q.vmta}`;
}

function slower(a: Rate | null, b: Rate | null): Rate | null {
  if (!a) return b;
  if (!b) return a;
  return a.count / a.perMs <= b.count / b.perMs ? a : b;
}
