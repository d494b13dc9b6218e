/**
 * PowerMTA's queue modes per (domain, vmta) queue: `normal` and `backoff`. A pattern rule with
 * `mode=backoff` puts the queue in backoff, where the `backoff-*` directives replace their normal twins;
 * after `backoff-to-normal-after` without a further backoff reply it returns to normal (each backoff reply
 * restarts that wait, as long as the ISP keeps pushing back the queue stays slow). `mode=normal` returns
 * at once. Every change is recorded with the reply that caused it.
 */
import type { DomainSettings, Rate } from '../config/model.js';
import type { Clock } from './clock.js';
import type { EventRecorder } from './events.js';

export type QueueMode = 'normal' | 'backoff';

export interface QueueModeInfo {
  domain: string;
  vmta: string;
  mode: QueueMode;
  /** When the current mode began (epoch ms). */
  since: number;
  /** Backoff only: when the queue returns to normal unless another backoff reply comes. */
  until: number | null;
  /** The reply that caused the current mode. */
  cause: string;
}

/** The settings the scheduler must apply now: in backoff, `backoff-*` values replace their twins. */
export interface ModeSettings {
  maxMsgRate: Rate | null;
  retryAfter: number[];
  maxSmtpOut: number;
}

export function effectiveForMode(mode: QueueMode, s: DomainSettings): ModeSettings {
  if (mode === 'normal')
    return { maxMsgRate: s.maxMsgRate, retryAfter: s.retryAfter, maxSmtpOut: s.maxSmtpOut };
  return {
    maxMsgRate: s.backoffMaxMsgRate ?? s.maxMsgRate,
    retryAfter: s.backoffRetryAfter ?? s.retryAfter,
    maxSmtpOut: s.backoffMaxSmtpOut ?? s.maxSmtpOut,
  };
}

interface Entry extends QueueModeInfo {
  cancel: (() => void) | null;
}

export class QueueModes {
  private readonly clock: Clock;
  private readonly events: EventRecorder;
  private readonly entries = new Map<string, Entry>();

  constructor(clock: Clock, events: EventRecorder) {
    this.clock = clock;
    this.events = events;
  }

  mode(domain: string, vmta: string): QueueMode {
    return this.entries.get(key(domain, vmta))?.mode ?? 'normal';
  }

  info(domain: string, vmta: string): QueueModeInfo | null {
    const e = this.entries.get(key(domain, vmta));
    return e ? strip(e) : null;
  }

  /** Queues currently in backoff (normal queues are not listed), for `freight show queues`. */
  list(): QueueModeInfo[] {
    return [...this.entries.values()].map(strip);
  }

  /**
   * Enter backoff (or extend it) because of `reply`; `backoffToNormalAfter` is the queue's setting (ms).
   * Returns true when the mode changed.
   */
  backoff(domain: string, vmta: string, reply: string, backoffToNormalAfter: number): boolean {
    const k = key(domain, vmta);
    const now = this.clock.now();
    const existing = this.entries.get(k);
    existing?.cancel?.();
    const entry: Entry = existing ?? {
      domain,
      vmta,
      mode: 'backoff',
      since: now,
      until: null,
      cause: reply,
      cancel: null,
    };
    entry.until = now + backoffToNormalAfter;
    entry.cancel = this.clock.setTimer(
      () =>
        this.normal(
          domain,
          vmta,
          `backoff-to-normal-after ${Math.round(backoffToNormalAfter / 1000)}s elapsed`,
        ),
      backoffToNormalAfter,
    );
    this.entries.set(k, entry);
    if (existing) return false;
    this.events.record({
      kind: 'mode-backoff',
      at: now,
      domain,
      vmta,
      cause: reply,
      details: { until: new Date(entry.until).toISOString() },
    });
    return true;
  }

  /** Return to normal mode (a `mode=normal` rule or the backoff timer). Returns true when the mode changed. */
  normal(domain: string, vmta: string, cause: string): boolean {
    const k = key(domain, vmta);
    const e = this.entries.get(k);
    if (!e) return false;
    e.cancel?.();
    this.entries.delete(k);
    this.events.record({ kind: 'mode-normal', at: this.clock.now(), domain, vmta, cause });
    return true;
  }

  /** Stop every timer (engine shutdown or tests); modes are not recorded as changed. */
  close(): void {
    for (const e of this.entries.values()) e.cancel?.();
    this.entries.clear();
  }
}

function key(domain: string, vmta: string): string {
  return `${domain.toLowerCase()}/${vmta}`;
}

function strip(e: Entry): QueueModeInfo {
  return { domain: e.domain, vmta: e.vmta, mode: e.mode, since: e.since, until: e.until, cause: e.cause };
}
