/**
 * Which virtual MTAs' source IPs may not send to which domains right now. Disabling comes from a pattern
 * rule (`disable-source-ip,reenable-after=1h`) for one queue domain, or from a DNSBL listing for the
 * domains the DNSBL watch names ('*' = every domain). Each cause is kept apart, so a DNSBL delisting does
 * not lift a pattern rule's block or the other way round. Every change is recorded with its cause.
 */
import type { Clock } from './clock.js';
import type { EventRecorder } from './events.js';

export interface DisabledSource {
  vmta: string;
  sourceIp: string | null;
  /** Queue domain, or '*' for every domain. */
  domain: string;
  /** 'pattern' or 'dnsbl:<zone>'. */
  cause: string;
  since: number;
  /** Epoch ms of automatic re-enabling; null = until lifted (delisting, operator). */
  until: number | null;
  /** The reply or listing that caused it. */
  reason: string;
}

interface Entry extends DisabledSource {
  cancel: (() => void) | null;
}

export class SourceIpState {
  private readonly clock: Clock;
  private readonly events: EventRecorder;
  private readonly entries = new Map<string, Entry>();

  constructor(clock: Clock, events: EventRecorder) {
    this.clock = clock;
    this.events = events;
  }

  /** May `vmta` send to `domain` now? (Checked before opening a connection.) */
  isDisabled(vmta: string, domain: string): boolean {
    const d = domain.toLowerCase();
    for (const e of this.entries.values()) {
      if (e.vmta === vmta && (e.domain === '*' || e.domain === d)) return true;
    }
    return false;
  }

  /** Latest automatic re-enable time for (vmta, domain), or null when disabled indefinitely / not at all. */
  disabledUntil(vmta: string, domain?: string): number | null {
    let until: number | null = null;
    for (const e of this.entries.values()) {
      if (e.vmta !== vmta || (domain && e.domain !== '*' && e.domain !== domain.toLowerCase())) continue;
      if (e.until === null) return null;
      until = Math.max(until ?? 0, e.until);
    }
    return until;
  }

  list(): DisabledSource[] {
    return [...this.entries.values()].map(({ cancel: _c, ...rest }) => rest);
  }

  /**
   * Disable `vmta` for `domain` because of `cause`; `reenableAfter` ms (null = until `enable`).
   * A repeat for the same (vmta, domain, cause) only extends the time. Returns true when newly disabled.
   */
  disable(opts: {
    vmta: string;
    sourceIp?: string | null;
    domain: string;
    cause: string;
    reason: string;
    reenableAfter: number | null;
  }): boolean {
    const domain = opts.domain.toLowerCase();
    const k = key(opts.vmta, domain, opts.cause);
    const now = this.clock.now();
    const existing = this.entries.get(k);
    existing?.cancel?.();
    const entry: Entry = existing ?? {
      vmta: opts.vmta,
      sourceIp: opts.sourceIp ?? null,
      domain,
      cause: opts.cause,
      since: now,
      until: null,
      reason: opts.reason,
      cancel: null,
    };
    entry.until = opts.reenableAfter === null ? null : now + opts.reenableAfter;
    entry.cancel =
      opts.reenableAfter === null
        ? null
        : this.clock.setTimer(
            () =>
              this.enable(
                opts.vmta,
                domain,
                opts.cause,
                `reenable-after ${Math.round(opts.reenableAfter! / 1000)}s elapsed`,
              ),
            opts.reenableAfter,
          );
    this.entries.set(k, entry);
    if (existing) return false;
    this.events.record({
      kind: 'source-ip-disabled',
      at: now,
      domain,
      vmta: opts.vmta,
      sourceIp: entry.sourceIp,
      cause: opts.reason,
      details: {
        by: opts.cause,
        until: entry.until === null ? 'lifted' : new Date(entry.until).toISOString(),
      },
    });
    return true;
  }

  /** Lift the block `cause` put on (vmta, domain). Returns true when one was lifted. */
  enable(vmta: string, domain: string, cause: string, reason: string): boolean {
    const k = key(vmta, domain.toLowerCase(), cause);
    const e = this.entries.get(k);
    if (!e) return false;
    e.cancel?.();
    this.entries.delete(k);
    this.events.record({
      kind: 'source-ip-enabled',
      at: this.clock.now(),
      domain: e.domain,
      vmta,
      sourceIp: e.sourceIp,
      cause: reason,
      details: { by: cause },
    });
    return true;
  }

  close(): void {
    for (const e of this.entries.values()) e.cancel?.();
    this.entries.clear();
  }
}

function key(vmta: string, domain: string, cause: string): string {
  return `${vmta}\u0000${domain}\u0000${cause}`;
}
