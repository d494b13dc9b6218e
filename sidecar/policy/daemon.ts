/**
 * `freight policy`: wires the pieces — settings from freight.conf, in-memory counters restored from the
 * counter store, the suppression list, listeners, periodic snapshots and the stats socket. Decisions
 * never wait for a store: if one is unavailable, each limit fails open or closed as configured.
 */
import { mkdirSync } from 'node:fs';
import type net from 'node:net';
import { AcctStore } from '../acct/store.js';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { FreightConfig } from '../config/model.js';
import { SuppressionList } from '../suppress/list.js';
import { PolicyDecider, type StoreHealth, type SuppressionCheck } from './decide.js';
import { Limiter } from './limiter.js';
import { buildPolicySettings, type PolicySettings } from './limits-config.js';
import { PolicyPersistence } from './persist.js';
import { PolicyServer, type PolicyServerOptions } from './server.js';
import { collectStats, type PolicyStats, serveStats, statsSocketPath } from './stats.js';

/** Keys handled per slice of periodic work (packing changes for the worker, sweeping). */
const CHUNK_KEYS = 250;
const SWEEP_EVERY_MS = 30_000;

export interface PolicyDaemonOptions {
  server?: PolicyServerOptions;
  /** Where counters are saved (default: policy-counters.db next to acct-db). */
  countersPath?: string;
  /** How often the suppression list picks up other processes' changes. */
  suppressionRefreshMs?: number;
}

export interface PolicyDaemon {
  /** The TCP address actually bound (port 0 in config → the OS's choice). */
  address: net.AddressInfo;
  settings(): PolicySettings;
  stats(): PolicyStats;
  /** Apply a new configuration; throws (keeping the old one) if its policy blocks are invalid. */
  reload(config: FreightConfig): void;
  stop(): Promise<void>;
}

/** A suppression list read in this thread: reads in WAL mode never wait for a writer's lock. */
class SuppressionSource implements SuppressionCheck {
  private store: AcctStore | null = null;
  private list: SuppressionList | null = null;

  constructor(
    private readonly acctDb: string,
    private readonly health: StoreHealth,
    private readonly log: Logger,
  ) {}

  check(address: string): boolean {
    return this.list?.check(address) !== undefined;
  }

  refresh(): void {
    try {
      if (!this.list) {
        this.store = AcctStore.open(this.acctDb);
        this.list = SuppressionList.open(this.store);
        this.log.info('suppression list loaded', { entries: this.list.size });
      } else {
        this.list.refresh();
      }
      if (!this.health.suppression) this.health.suppression = true;
    } catch (err) {
      if (this.health.suppression || !this.list) {
        this.log.error('suppression list unavailable', { path: this.acctDb, error: errorMessage(err) });
      }
      this.health.suppression = false;
      this.close();
    }
  }

  close(): void {
    this.list = null;
    this.store?.close();
    this.store = null;
  }
}

/**
 * What a reload replaces, shared by the decisions, the periodic work and the stats: settings, the limiter
 * holding the counters, and the decider built over both.
 */
interface PolicyRuntime {
  settings: PolicySettings;
  limiter: Limiter;
  decider: PolicyDecider;
}

export async function startPolicyDaemon(
  config: FreightConfig,
  log: Logger,
  opts: PolicyDaemonOptions = {},
): Promise<PolicyDaemon> {
  const settings = buildPolicySettings(config);
  const health: StoreHealth = { counters: false, suppression: false };
  const startedAt = Date.now();
  const limiter = new Limiter(settings.limits);
  const suppression = new SuppressionSource(config.global.acctDb, health, log);
  // Rejections are recorded only once requests arrive, after the store below is open.
  const makeDecider = (s: PolicySettings, l: Limiter) =>
    new PolicyDecider(s, l, suppression, health, (rec) => persistence.recordRejection(rec));
  const rt: PolicyRuntime = { settings, limiter, decider: makeDecider(settings, limiter) };
  const persistence = await openPersistence(config, rt, health, log, opts.countersPath);
  if (settings.suppression.enabled) suppression.refresh();

  const server = new PolicyServer((req, txn) => rt.decider.decide(req, txn), log, opts.server);
  const address = await server.listenTcp(
    config.global.policyListener.host,
    config.global.policyListener.port,
  );
  if (config.global.policySocket) await server.listenUnix(config.global.policySocket);

  const stats = () =>
    collectStats(rt.limiter, {
      startedAt,
      stores: health,
      decisions: rt.decider.totals,
      connections: server.counters,
    });
  mkdirSync(config.global.runDir, { recursive: true });
  const statsServer = await serveStats(statsSocketPath(config.global.runDir), stats).catch((err) => {
    log.warn('stats socket unavailable; freight policy stats will not work', { error: errorMessage(err) });
    return null;
  });
  const stopPeriodic = startPeriodicWork(rt, persistence, suppression, opts.suppressionRefreshMs ?? 1000);

  log.info('listening', {
    tcp: `${address.address}:${address.port}`,
    unix: config.global.policySocket ?? undefined,
    limits: settings.limits.length,
  });

  return {
    address,
    settings: () => rt.settings,
    stats,
    reload(next) {
      reloadRuntime(rt, config, next, makeDecider, log);
    },
    async stop() {
      stopPeriodic();
      await server.close();
      statsServer?.close();
      await persistence.close(rt.limiter.takeChanges());
      suppression.close();
    },
  };
}

/**
 * The counter store. Saved counters may arrive late (the store came back after a failure), so they go
 * into whichever limiter is live by then.
 */
async function openPersistence(
  config: FreightConfig,
  rt: PolicyRuntime,
  health: StoreHealth,
  log: Logger,
  countersPath: string | undefined,
): Promise<PolicyPersistence> {
  const persistence = new PolicyPersistence(
    config.global.acctDb,
    {
      onRestored: (snaps) => {
        const n = rt.limiter.restore(snaps, Date.now());
        log.info('counters restored', { keys: n });
      },
      onHealth: (_store, ok) => {
        health.counters = ok;
        if (!ok)
          log.warn('counter store unavailable; limits with store-failure closed defer until it is back');
      },
    },
    log,
    countersPath,
  );
  await persistence.ready;
  return persistence;
}

/**
 * Snapshots of changed counters, sweeps of idle keys and suppression-list refreshes; returns the stop.
 * Work on many keys goes in slices of CHUNK_KEYS keys with replies served in between, because done in one
 * piece (a snapshot of every changed key, as objects) it held the main thread for milliseconds every
 * second (bench/policy.bench.ts measures decision latency under this work).
 */
function startPeriodicWork(
  rt: PolicyRuntime,
  persistence: PolicyPersistence,
  suppression: SuppressionSource,
  suppressionRefreshMs: number,
): () => void {
  const saveChanges = (left: number) => {
    persistence.saveCounters(rt.limiter.takeChanges(CHUNK_KEYS));
    if (left > CHUNK_KEYS) setImmediate(saveChanges, left - CHUNK_KEYS);
  };
  const sweep = () => {
    if (!rt.limiter.sweep(Date.now(), CHUNK_KEYS)) setImmediate(sweep);
  };
  const snapshotTimer = setInterval(
    () => saveChanges(rt.limiter.dirty.size + rt.limiter.removed.length),
    rt.settings.snapshotIntervalMs,
  );
  const sweepTimer = setInterval(sweep, SWEEP_EVERY_MS);
  const refreshTimer = setInterval(() => {
    if (rt.settings.suppression.enabled) suppression.refresh();
  }, suppressionRefreshMs);
  return () => {
    clearInterval(snapshotTimer);
    clearInterval(sweepTimer);
    clearInterval(refreshTimer);
  };
}

/** New limits and settings in place; counters carry over, listener changes wait for a restart. */
function reloadRuntime(
  rt: PolicyRuntime,
  config: FreightConfig,
  next: FreightConfig,
  makeDecider: (settings: PolicySettings, limiter: Limiter) => PolicyDecider,
  log: Logger,
): void {
  const nextSettings = buildPolicySettings(next);
  const g = next.global;
  if (
    g.policyListener.host !== config.global.policyListener.host ||
    g.policyListener.port !== config.global.policyListener.port ||
    g.policySocket !== config.global.policySocket
  ) {
    log.warn('policy-listener and policy-socket changes take effect at the next restart');
  }
  const totals = rt.decider.totals;
  rt.settings = nextSettings;
  rt.limiter = rt.limiter.rebuild(nextSettings.limits, Date.now());
  rt.decider = makeDecider(rt.settings, rt.limiter);
  Object.assign(rt.decider.totals, totals);
  log.info('policy limits reloaded', { limits: rt.settings.limits.length });
}
