/**
 * DeliveryQueue: one per (destination domain or mx-rollup, virtual MTA). Holds delivery jobs (the
 * recipients of one message bound for this queue, at most max-rcpt-per-message each) in a ready FIFO
 * and a retry min-heap keyed by due time, its open sessions, its throttles and counters. Every
 * operation is O(1) or O(log n) in the queue's size; nothing scans all recipients.
 */
import type { DomainSettings, Rate } from '../../config/model.js';
import type { OutboundSession } from '../deliver/index.js';
import type { SpooledMessage } from '../types.js';
import type { Route } from './routing.js';
import { PacedRate, RateMeter } from './throttle.js';

export interface Job {
  msg: SpooledMessage;
  /** Indices into msg.recipients. */
  rcpts: number[];
  /** Epoch ms when it may be tried (retry heap key). */
  dueAt: number;
  /** Recipient domain the route was made for (re-routing to another pool member starts from it). */
  rcptDomain: string;
  mxDomain: string;
  vmtaPool: string | null;
  /** MX hosts to avoid on the next try (421 with smtp-421-means-mx-unavailable). */
  skipMx: Set<string> | null;
}

export type QueueMode = 'normal' | 'backoff';

/** The limits in force: the normal ones, or in backoff the `backoff-*` twins, with any rate cut applied. */
export interface QueueLimits {
  maxSmtpOut: number;
  maxMsgRate: Rate | null;
  retryAfter: number[];
}

export interface EffectiveLimits extends QueueLimits {
  mode: QueueMode;
}

export function normalLimits(s: DomainSettings): EffectiveLimits {
  return { maxSmtpOut: s.maxSmtpOut, maxMsgRate: s.maxMsgRate, retryAfter: s.retryAfter, mode: 'normal' };
}

export class Deque<T> {
  private items: Array<T | undefined> = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }
  push(v: T): void {
    this.items.push(v);
  }
  unshift(v: T): void {
    if (this.head > 0) this.items[--this.head] = v;
    else this.items.unshift(v);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    // Compact once the dead prefix dominates, keeping shift amortised O(1).
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
  drain(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }
}

export class JobHeap {
  private readonly a: Job[] = [];

  get length(): number {
    return this.a.length;
  }
  peek(): Job | undefined {
    return this.a[0];
  }
  push(job: Job): void {
    const a = this.a;
    a.push(job);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p] as Job;
      if (parent.dueAt <= job.dueAt) break;
      a[i] = parent;
      i = p;
    }
    a[i] = job;
  }
  pop(): Job | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || !last) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && (a[r] as Job).dueAt < (a[l] as Job).dueAt ? r : l;
      if ((a[c] as Job).dueAt >= last.dueAt) break;
      a[i] = a[c] as Job;
      i = c;
    }
    a[i] = last;
    return top;
  }
  drain(): Job[] {
    return this.a.splice(0);
  }
}

export class DeliveryQueue {
  readonly key: string;
  readonly domain: string;
  readonly vmta: string;
  route: Route;
  settings: DomainSettings;
  /** Set by `pause` (domain or this queue), cleared by `resume`: no new attempts while set. */
  paused = false;
  readonly ready = new Deque<Job>();
  readonly retry = new JobHeap();
  retryTimer: NodeJS.Timeout | null = null;
  retryTimerAt = 0;
  /** A pump is scheduled for this time (rate pacing, suspension end). */
  wakeTimer: NodeJS.Timeout | null = null;
  wakeAt = 0;
  readonly sessions = new Set<OutboundSession>();
  /** Open sessions waiting for work, most recently used last (reused first, so the others idle out). */
  private readonly idle: OutboundSession[] = [];
  private readonly idleSince = new Map<OutboundSession, number>();
  /** One sweep per queue, not a timer per parked session: sessions are parked once per message. */
  private idleTimer: NodeJS.Timeout | null = null;
  connecting = 0;
  /** No new connections before this time (after every MX failed, or the remote limited us). */
  suspendedUntil = 0;
  connectFailures = 0;
  readonly msgRate: PacedRate;
  readonly connectRate: PacedRate;
  readonly meter = new RateMeter();
  /** Recipients held (ready, retrying or in flight) and in flight. */
  depth = 0;
  inFlight = 0;
  delivered = 0;
  bounced = 0;
  deferred = 0;
  lastError: string | null = null;
  lastErrorAt: number | null = null;

  private eff: EffectiveLimits;

  constructor(route: Route, settings: DomainSettings, limits: EffectiveLimits = normalLimits(settings)) {
    this.key = route.key;
    this.domain = route.queueDomain;
    this.vmta = route.vmta;
    this.route = route;
    this.settings = settings;
    this.eff = limits;
    this.msgRate = new PacedRate(limits.maxMsgRate);
    this.connectRate = new PacedRate(settings.maxConnectRate);
  }

  get mode(): QueueMode {
    return this.eff.mode;
  }

  limits(): QueueLimits {
    return this.eff;
  }

  /** New settings (reload) or limits (mode change, rate cut): throttles follow, jobs and sessions stay. */
  apply(settings: DomainSettings, limits: EffectiveLimits): void {
    const rateChanged = !sameRate(this.eff.maxMsgRate, limits.maxMsgRate);
    this.settings = settings;
    this.eff = limits;
    if (rateChanged) this.msgRate.setRate(limits.maxMsgRate);
    this.connectRate.setRate(settings.maxConnectRate);
  }

  /** Delay before retry number `attempts` (1-based); the last interval repeats. */
  retryDelay(attempts: number): number {
    const list = this.limits().retryAfter;
    if (list.length === 0) return 600_000;
    return list[Math.min(Math.max(attempts, 1), list.length) - 1] ?? 600_000;
  }

  openConnections(): number {
    return this.sessions.size + this.connecting;
  }

  nextAttemptAt(): number | null {
    if (this.ready.length > 0) return Math.max(Date.now(), this.suspendedUntil);
    return this.retry.peek()?.dueAt ?? null;
  }

  /** An open idle session to reuse (its idle timer stopped), or null. */
  takeIdle(): OutboundSession | null {
    for (let s = this.idle.pop(); s; s = this.idle.pop()) {
      this.idleSince.delete(s);
      if (!s.isClosed) return s;
    }
    return null;
  }

  /** Park a session for reuse; it closes after connection-idle-timeout unless taken first. */
  parkIdle(s: OutboundSession): void {
    this.idle.push(s);
    this.idleSince.set(s, Date.now());
    if (!this.idleTimer) this.armIdleSweep(this.settings.connectionIdleTimeout);
  }

  /** A session closed (by either side): forget it if it was parked. */
  forgetIdle(s: OutboundSession): void {
    if (!this.idleSince.delete(s)) return;
    const i = this.idle.indexOf(s);
    if (i >= 0) this.idle.splice(i, 1);
  }

  private armIdleSweep(ms: number): void {
    this.idleTimer = setTimeout(() => this.sweepIdle(), Math.max(ms, 1));
    this.idleTimer.unref();
  }

  private sweepIdle(): void {
    this.idleTimer = null;
    const now = Date.now();
    const timeout = this.settings.connectionIdleTimeout;
    let next = Number.POSITIVE_INFINITY;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const s = this.idle[i] as OutboundSession;
      const since = this.idleSince.get(s) ?? now;
      if (now - since >= timeout) {
        this.idle.splice(i, 1);
        this.idleSince.delete(s);
        s.close();
      } else next = Math.min(next, since + timeout);
    }
    if (next !== Number.POSITIVE_INFINITY) this.armIdleSweep(next - now);
  }

  /** Close every idle session now (the queue may not send for a while, or the engine stops). */
  closeIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.idleSince.clear();
    for (const s of this.idle.splice(0)) s.close();
  }

  noteError(text: string, now: number): void {
    this.lastError = text;
    this.lastErrorAt = now;
  }
}

function sameRate(a: Rate | null, b: Rate | null): boolean {
  return a === b || (a !== null && b !== null && a.count === b.count && a.perMs === b.perMs);
}
