/**
 * The engine's deliverability state in one place: the event recorder, the reply reactor (queue modes,
 * disabled source IPs, rate cuts), warm-up caps, the DNSBL watch and the DKIM signer, built from the
 * config, reloaded with it and stopped with the engine. The scheduler asks it which limits are in force,
 * whether a (vmta, domain) may send now, and feeds it every reply and outcome.
 */
import type { AcctRecord } from '../../acct/record.js';
import { createLogger } from '../../common/log.js';
import type { DomainSettings, FreightConfig } from '../../config/model.js';
import { type Clock, type CronStarter, nodeCronStarter, systemClock } from '../../deliverability/clock.js';
import { warmupPlans } from '../../deliverability/config.js';
import { type DnsblLookup, DnsblWatch, resolverLookup } from '../../deliverability/dnsbl.js';
import { type DeliverabilityEvent, EventRecorder } from '../../deliverability/events.js';
import { DeliverabilityReactor, type EffectiveSettings } from '../../deliverability/reactor.js';
import { WarmupTracker } from '../../deliverability/warmup.js';
import { loadDomainKeys } from '../../dkim/keys.js';
import { DkimSigner } from '../../dkim/signer.js';

const log = createLogger('engine/deliverability');

/** How often warm-up counts are saved besides every day tick and shutdown. */
const WARMUP_SAVE_MS = 60_000;

export interface DeliverabilityOptions {
  /** Default: the system clock. Tests pass a ManualClock. */
  clock?: Clock;
  /** Runs warm-up `advance-at` and DNSBL `check-schedule` crons. Default: node-cron. */
  cron?: CronStarter;
  /** DNSBL lookups. Default: uncached A queries against the engine's `dns-server`. */
  lookup?: DnsblLookup;
  /** Where warm-up days and counts survive a restart; null = kept in memory only. */
  warmupStatePath?: string | null;
}

export class EngineDeliverability {
  readonly events: EventRecorder;
  readonly reactor: DeliverabilityReactor;
  readonly warmup: WarmupTracker;
  readonly dnsbl: DnsblWatch;
  private signerNow: DkimSigner;
  private readonly clock: Clock;
  private readonly cron: CronStarter;
  private readonly saveTimer: NodeJS.Timeout;
  private closed = false;

  constructor(
    config: FreightConfig,
    acct: { write(rec: AcctRecord): void } | null,
    opts: DeliverabilityOptions = {},
  ) {
    const clock = opts.clock ?? systemClock;
    this.clock = clock;
    this.cron = opts.cron ?? nodeCronStarter;
    // Keys first: a key that cannot be loaded stops the start before any cron runs.
    this.signerNow = new DkimSigner(loadDomainKeys(config.domainKeys), { now: () => clock.now() });
    this.events = new EventRecorder(acct);
    this.reactor = new DeliverabilityReactor({ config, clock, events: this.events });
    this.warmup = new WarmupTracker({
      plans: warmupPlans(config),
      clock,
      events: this.events,
      statePath: opts.warmupStatePath ?? null,
    });
    this.dnsbl = new DnsblWatch({
      config,
      lookup: opts.lookup ?? resolverLookup(config.global.dnsServer),
      sources: this.reactor.sources,
      events: this.events,
      clock,
    });
    this.warmup.start(this.cron);
    this.dnsbl.start(this.cron);
    this.saveTimer = setInterval(() => this.warmup.save(), WARMUP_SAVE_MS);
    this.saveTimer.unref();
  }

  get signer(): DkimSigner {
    return this.signerNow;
  }

  /**
   * A new config: everything is checked first (keys, plans, zones), so a bad one throws and the running
   * state stays as it was; then the pieces switch over and the crons restart on the new schedules.
   */
  reconfigure(config: FreightConfig): void {
    const signer = new DkimSigner(loadDomainKeys(config.domainKeys), { now: () => this.clock.now() });
    const plans = warmupPlans(config);
    this.dnsbl.setConfig(config);
    this.signerNow = signer;
    this.reactor.setConfig(config);
    this.warmup.setPlans(plans);
    this.warmup.start(this.cron);
    this.dnsbl.start(this.cron);
  }

  /** Subscribe to deliverability events (the scheduler re-reads limits and re-pumps queues). */
  onEvent(fn: (e: DeliverabilityEvent) => void): () => void {
    return this.events.on(fn);
  }

  /** May `vmta` send to the queue domain now: not disabled there and within today's warm-up cap. */
  canUse(vmta: string, queueDomain: string): boolean {
    return !this.reactor.isSourceDisabled(vmta, queueDomain) && this.warmup.remaining(vmta, queueDomain) > 0;
  }

  /** The limits in force for a queue (backoff twins, rate cuts). */
  effective(domain: string, vmta: string, settings: DomainSettings): EffectiveSettings {
    return this.reactor.effective({ domain, vmta }, settings);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.saveTimer);
    this.warmup.stop();
    this.dnsbl.stop();
    this.warmup.save();
    this.reactor.close();
    log.info('deliverability state saved and stopped');
  }
}
