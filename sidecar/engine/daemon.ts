/**
 * `freight engine`: wires config → spool (recovery) → scheduler → intake → control socket. Run as a
 * daemon (the common skeleton: pid file `<run-dir>/engine.pid`, SIGHUP reload, SIGTERM/SIGINT stop),
 * a stop closes intake first (messages being spooled finish briefly), then delivery, then flushes the
 * journal and accounting; a config that fails to load on reload is refused and the running one kept.
 */
import { join } from 'node:path';
import { AcctStore } from '../acct/store.js';
import { AcctWriter } from '../acct/writer.js';
import { BounceClassifier } from '../classify/classifier.js';
import { runDaemon } from '../common/daemon.js';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { loadConfig } from '../config/load.js';
import type { FreightConfig } from '../config/model.js';
import { SuppressionList } from '../suppress/list.js';
import { type ControlRequest, ControlServer, type EngineStatusReport } from './control/index.js';
import { DsnSender } from './dsn/index.js';
import { Intake } from './intake/index.js';
import { createScheduler, type Scheduler } from './schedule/index.js';
import { engineSettings } from './settings.js';
import { Spool } from './spool/index.js';

const log = createLogger('engine');

/** Longest one accounting batch waits for the store's write lock (ms). */
const ACCT_BUSY_TIMEOUT_MS = 500;

function operatorRules(config: FreightConfig) {
  return config.bounceCategoryPatterns.map((p) => ({
    pattern: p.pattern,
    category: p.category,
    source: `${p.file}:${p.line}`,
  }));
}

export class EngineDaemon {
  private config: FreightConfig;
  private readonly configPath: string;
  private readonly startedAt = Date.now();
  private spool!: Spool;
  private store!: AcctStore;
  private acct!: AcctWriter;
  private scheduler!: Scheduler;
  private intake!: Intake;
  private dsn!: DsnSender;
  private control!: ControlServer;
  private stopping: Promise<void> | null = null;

  private constructor(configPath: string, config: FreightConfig) {
    this.configPath = configPath;
    this.config = config;
  }

  /** `config`: the file's contents when the caller has loaded it already. */
  static async start(configPath: string, config = loadConfig(configPath)): Promise<EngineDaemon> {
    const d = new EngineDaemon(configPath, config);
    await d.boot();
    return d;
  }

  private async boot(): Promise<void> {
    const { config } = this;
    const g = config.global;
    const settings = engineSettings(config);
    // A batch waiting on another process's lock blocks the event loop (SQLite is synchronous): wait
    // briefly and let the writer's backoff retry, rather than stall intake and delivery for seconds.
    this.store = AcctStore.open(g.acctDb, { busyTimeoutMs: ACCT_BUSY_TIMEOUT_MS });
    // Rows derive from spool journal records; the cursor says which ones the store already holds.
    this.acct = new AcctWriter(this.store, {
      source: 'engine',
      checkpoint: { source: 'engine', position: () => this.spool.acctPosition() },
    });
    this.spool = await Spool.open({
      dir: g.spoolDir,
      minFreeBytes: settings.spoolMinFree,
      commitDelayMs: settings.spoolCommitDelay,
      acctCursor: this.acct.committedPosition,
    });
    this.replayAcct();
    this.dsn = new DsnSender({
      spool: this.spool,
      hostName: g.hostName,
      postmaster: g.postmaster,
      postfixListener: g.postfixListener,
      maxBody: settings.dsnMaxBody,
    });
    this.scheduler = createScheduler({
      config,
      spool: this.spool,
      acct: this.acct,
      classifier: BounceClassifier.load({ operatorRules: operatorRules(config) }),
      suppression: SuppressionList.open(this.store),
      dsnSink: this.dsn,
      deliverability: { warmupStatePath: join(g.spoolDir, 'warmup-state.json') },
    });
    // The DSN sender must see owed bounces before final messages are removed (takeRecovered's order).
    const recovered = this.spool.takeRecovered((entry, idx) => this.dsn.owed(entry, idx));
    for (const msg of recovered) this.scheduler.submit(msg);
    this.dsn.kick();
    this.intake = new Intake({
      config,
      settings,
      spool: this.spool,
      scheduler: this.scheduler,
      acct: this.acct,
    });
    await this.intake.listen();
    this.control = new ControlServer(g.runDir, (req) => this.handle(req));
    await this.control.listen();
    log.info('engine started', {
      recovered: recovered.length,
      listener: `${g.smtpListener.host}:${g.smtpListener.port}`,
    });
  }

  /** Rows the store missed at the last stop (a crash), then compaction waits for the store. */
  private replayAcct(): void {
    const missing = this.spool.takeMissingAcctRows();
    for (const row of missing) this.acct.write(row);
    this.acct.flush();
    if (missing.length > 0)
      log.info('accounting rows replayed from the spool journal', { rows: missing.length });
    // A store being retried is not asked again here: a locked database would stall the round.
    this.spool.setCompactionGate(() => !this.acct.retrying && this.acct.flush());
  }

  private async handle(req: ControlRequest): Promise<unknown> {
    const s = this.scheduler;
    switch (req.op) {
      case 'status':
        return this.status();
      case 'queues':
        return s.queues();
      case 'domains':
        return s.domains();
      case 'vmtas':
        return s.vmtas();
      case 'pause':
        return s.pause(req.domain.toLowerCase(), req.vmta);
      case 'resume':
        return s.resume(req.domain.toLowerCase(), req.vmta);
      case 'schedule':
        return s.schedule(req.domain.toLowerCase());
      case 'reload':
        // The same outcome lines as a SIGHUP reload (the daemon skeleton logs those).
        try {
          this.reload();
        } catch (err) {
          log.error('config reload refused, keeping the running configuration', {
            reason: errorMessage(err),
          });
          throw err;
        }
        log.info('configuration reloaded');
        return { reloaded: true };
    }
  }

  async status(): Promise<EngineStatusReport> {
    const acct = this.acct.status();
    return {
      pid: process.pid,
      startedAt: this.startedAt,
      configFile: this.configPath,
      intake: this.intake.status(),
      spool: this.spool.status(),
      delivery: await this.scheduler.status(),
      dsn: this.dsn.status(),
      acctBacklog: acct.backlog,
      acctQuarantined: acct.quarantined,
      acctRetrying: acct.retrying,
      acctLastError: acct.lastError,
      acctOverflowed: acct.overflowed,
    };
  }

  /** Load the config again; on failure keep running with the old one (throws so callers can report). */
  reload(): void {
    const next = loadConfig(this.configPath);
    const settings = engineSettings(next);
    this.scheduler.reconfigure(next);
    this.intake.reconfigure(next, settings);
    this.dsn.setTarget(next.global.postfixListener, next.global.hostName, next.global.postmaster);
    this.config = next;
  }

  /** Graceful stop: intake first (clients keep what is not acknowledged), then delivery, then flush. */
  stop(graceMs = 5000): Promise<void> {
    this.stopping ??= (async () => {
      log.info('engine stopping');
      await this.intake.close(graceMs);
      await this.control.close();
      await this.scheduler.close();
      this.dsn.close();
      await this.spool.close();
      this.acct.close();
      this.store.close();
      log.info('engine stopped');
    })();
    return this.stopping;
  }
}

/** Run the engine in the foreground until SIGTERM/SIGINT; returns the exit code. */
export async function runEngine(configPath: string): Promise<number> {
  const config = loadConfig(configPath);
  let daemon: EngineDaemon | null = null;
  let code = 0;
  await runDaemon('engine', config.global.runDir, log, {
    start: async () => {
      daemon = await EngineDaemon.start(configPath, config);
    },
    reload: () => daemon?.reload(),
    stop: async () => {
      try {
        await daemon?.stop();
      } catch (err) {
        log.error('unclean stop', { error: errorMessage(err) });
        code = 1;
      }
    },
  });
  return code;
}
