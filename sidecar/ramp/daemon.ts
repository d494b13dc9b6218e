/**
 * `freight ramp`: the socketmap server plus its two timers — re-read the shares (so `freight ramp set`
 * takes effect within a second, without a Postfix reload) and flush the measured split to the database.
 * Shares are read from the database at start, so they survive restarts; if they cannot be read the
 * daemon does not start, and Postfix holds mail (lookup failure → defer) rather than misroute it.
 */
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { FreightConfig, HostPort } from '../config/model.js';
import { RampRouter } from './router.js';
import { RampServer } from './server.js';
import { SplitCounter } from './split.js';
import { RampState } from './state.js';

export interface RampDaemonOptions {
  log: Logger;
  /** How often shares are re-read, ms (default 500). */
  pollMs?: number;
  /** How often the measured split is written, ms (default 1000). */
  flushMs?: number;
}

/** The transport answered for engine-routed recipients: the `freight` lmtp service to smtp-listener. */
export function engineTransportOf(config: FreightConfig): string {
  const g = config.global;
  return g.rampEngineTransport ?? `freight:inet:${g.smtpListener.host}:${g.smtpListener.port}`;
}

export class RampDaemon {
  private readonly timers: NodeJS.Timeout[] = [];
  private pollFailing = false;
  private flushFailing = false;

  private constructor(
    private readonly state: RampState,
    private readonly router: RampRouter,
    private readonly counter: SplitCounter,
    private readonly server: RampServer,
    private readonly log: Logger,
    readonly address: HostPort,
  ) {}

  static async start(config: FreightConfig, opts: RampDaemonOptions): Promise<RampDaemon> {
    const { log } = opts;
    // A short busy timeout: the synchronous SQLite calls run on the thread that answers Postfix.
    const state = RampState.open(config.global.acctDb, { busyTimeoutMs: 250 });
    try {
      const counter = new SplitCounter();
      const router = new RampRouter(engineTransportOf(config), counter);
      const shares = state.shares();
      router.setShares(shares);
      const server = new RampServer(router, log);
      const address = await server.listen(config.global.rampListener);
      const daemon = new RampDaemon(state, router, counter, server, log, address);
      log.info(`listening on ${address.host}:${address.port}`, {
        engineTransport: engineTransportOf(config),
        domains: shares.map((s) => `${s.domain}=${s.percent}%`).join(','),
      });
      daemon.timers.push(setInterval(() => daemon.poll(), opts.pollMs ?? 500));
      daemon.timers.push(setInterval(() => daemon.flush(), opts.flushMs ?? 1000));
      return daemon;
    } catch (err) {
      state.close();
      throw err;
    }
  }

  /** Apply a reloaded config. The listener and acct-db are bound at start; changing them needs a restart. */
  reload(next: FreightConfig, previous: FreightConfig): void {
    const pg = previous.global;
    const ng = next.global;
    if (
      ng.rampListener.host !== pg.rampListener.host ||
      ng.rampListener.port !== pg.rampListener.port ||
      ng.acctDb !== pg.acctDb
    ) {
      this.log.warn('ramp-listener and acct-db changes take effect after a restart');
    }
    this.router.setEngineTransport(engineTransportOf(next));
    this.poll();
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.server.close();
    this.flush();
    this.state.close();
  }

  private poll(): void {
    let shares: ReturnType<RampState['shares']>;
    try {
      shares = this.state.shares();
    } catch (err) {
      // Keep answering with the last shares we read: they are still the operator's last decision.
      if (!this.pollFailing)
        this.log.warn('cannot read ramp shares; keeping the last ones', { reason: errorMessage(err) });
      this.pollFailing = true;
      return;
    }
    if (this.pollFailing) this.log.info('ramp shares readable again');
    this.pollFailing = false;
    for (const s of this.router.setShares(shares)) {
      this.log.info(`share ${s.domain} ${s.percent}%`, { domain: s.domain, percent: s.percent });
    }
  }

  private flush(): void {
    const deltas = this.counter.take();
    if (deltas.length === 0) return;
    try {
      this.state.addSplit(deltas);
      if (this.flushFailing) this.log.info('ramp split counters written again');
      this.flushFailing = false;
    } catch (err) {
      this.counter.restore(deltas);
      if (!this.flushFailing)
        this.log.warn('cannot write ramp split counters; will retry', { reason: errorMessage(err) });
      this.flushFailing = true;
    }
  }
}
