/**
 * Which queue a recipient goes to: recipient domain → queue-to → domain settings → virtual MTA (an
 * allowed X-Virtual-MTA request first, then the domain's virtual-mta, then its virtual-mta-pool used
 * round-robin) → the (domain or mx-rollup, vmta) queue key and the settings that govern it.
 */
import { createLogger } from '../../common/log.js';
import type { DomainSettings, FreightConfig } from '../../config/model.js';

const log = createLogger('engine/routing');

/** The virtual MTA used when the config defines none: the OS picks the source IP. */
export const DEFAULT_VMTA = 'default';

export interface Route {
  /** Queue key `queueDomain/vmta`. */
  key: string;
  /** Queue's destination: mx-rollup name, queue-to target, or the recipient domain. */
  queueDomain: string;
  /** Domain whose MX receives the mail (queue-to target or the recipient domain). */
  mxDomain: string;
  vmta: string;
  vmtaPool: string | null;
  sourceIp: string | null;
  ehlo: string;
}

export interface VmtaChoice {
  vmta: string;
  pool: string | null;
}

export function domainOf(rcpt: string): string {
  const at = rcpt.lastIndexOf('@');
  return (at >= 0 ? rcpt.slice(at + 1) : rcpt).toLowerCase();
}

export class Router {
  private config: FreightConfig;
  private readonly rr = new Map<string, number>();

  constructor(config: FreightConfig) {
    this.config = config;
  }

  reconfigure(config: FreightConfig): void {
    this.config = config;
  }

  private nextInPool(pool: string): string | null {
    const p = this.config.pools.get(pool);
    if (!p || p.members.length === 0) return null;
    const n = this.rr.get(pool) ?? 0;
    this.rr.set(pool, n + 1);
    return p.members[n % p.members.length] ?? null;
  }

  /**
   * The next member of `pool` after the round-robin position that `usable` accepts; null when none does.
   * Members that may not send now (disabled source, warm-up cap) are skipped, not removed.
   */
  private nextUsable(pool: string, usable: (vmta: string) => boolean): string | null {
    const n = this.config.pools.get(pool)?.members.length ?? 0;
    for (let k = 0; k < n; k++) {
      const member = this.nextInPool(pool);
      if (member && usable(member)) return member;
    }
    return null;
  }

  /** Another member of `pool` than `current` that `usable` accepts, for work `current` cannot send now. */
  alternative(pool: string, current: string, usable: (vmta: string) => boolean): string | null {
    return this.nextUsable(pool, (m) => m !== current && usable(m));
  }

  /**
   * One choice per message and destination domain, so a pool spreads messages, not recipients. Pool
   * members `usable` rejects are passed over while another one can send; if none can, the round-robin
   * member is chosen and its queue holds the mail until it may send.
   */
  chooseVmta(
    domain: string,
    vmtaRequest: string | null,
    usable: (vmta: string) => boolean = () => true,
  ): VmtaChoice {
    if (vmtaRequest) {
      if (this.config.virtualMtas.has(vmtaRequest)) return { vmta: vmtaRequest, pool: null };
      const member = this.nextUsable(vmtaRequest, usable) ?? this.nextInPool(vmtaRequest);
      if (member) return { vmta: member, pool: vmtaRequest };
      log.warn('X-Virtual-MTA names no virtual-mta or pool; routing by domain', {
        request: vmtaRequest,
        domain,
      });
    }
    const s = this.config.domainSettings(domain);
    if (s.virtualMta && this.config.virtualMtas.has(s.virtualMta)) return { vmta: s.virtualMta, pool: null };
    if (s.virtualMtaPool) {
      const member = this.nextUsable(s.virtualMtaPool, usable) ?? this.nextInPool(s.virtualMtaPool);
      if (member) return { vmta: member, pool: s.virtualMtaPool };
      log.warn('virtual-mta-pool is empty or unknown; using the default', { pool: s.virtualMtaPool, domain });
    }
    return { vmta: DEFAULT_VMTA, pool: null };
  }

  /** Settings for a (domain, vmta), with the vmta's nested `<domain>` overrides. */
  settings(domain: string, vmta: string): DomainSettings {
    return vmta === DEFAULT_VMTA
      ? this.config.domainSettings(domain)
      : this.config.domainSettings(domain, vmta);
  }

  route(rcptDomain: string, choice: VmtaChoice): { route: Route; settings: DomainSettings } {
    const base = this.settings(rcptDomain, choice.vmta);
    const mxDomain = base.queueTo ? base.queueTo.toLowerCase() : rcptDomain;
    const settings = base.queueTo ? this.settings(mxDomain, choice.vmta) : base;
    const queueDomain = (settings.mxRollup ?? mxDomain).toLowerCase();
    const v = this.config.virtualMtas.get(choice.vmta);
    return {
      route: {
        key: `${queueDomain}/${choice.vmta}`,
        queueDomain,
        mxDomain,
        vmta: choice.vmta,
        vmtaPool: choice.pool,
        sourceIp: v?.sourceIp ?? null,
        ehlo: v?.hostName ?? this.config.global.hostName,
      },
      settings,
    };
  }

  vmtaInfo(name: string): { sourceIp: string; hostName: string } {
    const v = this.config.virtualMtas.get(name);
    return { sourceIp: v?.sourceIp ?? '', hostName: v?.hostName ?? this.config.global.hostName };
  }

  vmtaNames(): string[] {
    return [...this.config.virtualMtas.keys()];
  }
}
