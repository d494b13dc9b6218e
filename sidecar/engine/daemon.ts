/**
 * `freight engine`: wires config → spool (recovery) → scheduler → intake → control socket, and owns the
 * process lifecycle: pid file `<run-dir>/engine.pid`, SIGTERM/SIGINT graceful stop (stop accepting,
 * let messages being spooled finish briefly, flush the journal and accounting), SIGHUP reload (a config
 * that fails to load is refused and the running one kept).
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { AcctStore } from '../acct/store.js';
import { AcctWriter } from '../acct/writer.js';
import { BounceClassifier } from '../classify/classifier.js';
import { errorMessage, FreightError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { loadConfig } from '../config/load.js';
import type { FreightConfig } from '../config/model.js';
import { SuppressionList } from '../suppress/list.js';
import type { ControlRequest, EngineStatusReport } from './control/protocol.js';
import { ControlServer } from './control/server.js';
import { DsnSender } from './dsn/sender.js';
import { Intake } from './intake/listener.js';
import { createScheduler, type Scheduler } from './schedule/scheduler.js';
import { engineSettings } from './settings.js';
import { Spool } from './spool/spool.js';

const log = createLogger('engine');

/** Longest one accounting batch waits for the store's write lock (ms). */
const ACCT_BUSY_TIMEOUT_MS = 500;

export function pidFilePath(runDir: string): string {
  return join(runDir, 'engine.pid');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Refuse to start a second engine on the same run dir; a stale pid file (dead process) is replaced. */
function claimPidFile(runDir: string): string {
  fs.mkdirSync(runDir, { recursive: true });
  const path = pidFilePath(runDir);
  try {
    const pid = Number(fs.readFileSync(path, 'utf8').trim());
    if (pid && pid !== process.pid && alive(pid)) {
      throw new FreightError('ENGINE_RUNNING', `an engine is already running (pid ${pid}, ${path})`, { pid });
    }
  } catch (err) {
    if (!(err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT')) throw err;
  }
  fs.writeFileSync(path, `${process.pid}\n`);
  return path;
}

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
  private pidFile = '';
  private stopping: Promise<void> | null = null;

  private constructor(configPath: string, config: FreightConfig) {
    this.configPath = configPath;
    this.config = config;
  }

  static async start(configPath: string): Promise<EngineDaemon> {
    const d = new EngineDaemon(configPath, loadConfig(configPath));
    await d.boot();
    return d;
  }

  private async boot(): Promise<void> {
    const { config } = this;
    const g = config.global;
    const settings = engineSettings(config);
    this.pidFile = claimPidFile(g.runDir);
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
        this.reload();
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
    let next: FreightConfig;
    try {
      next = loadConfig(this.configPath);
    } catch (err) {
      log.error('config reload refused; keeping the running config', { error: errorMessage(err) });
      throw err;
    }
    const settings = engineSettings(next);
    this.scheduler.reconfigure(next);
    this.intake.reconfigure(next, settings);
    this.dsn.setTarget(next.global.postfixListener, next.global.hostName, next.global.postmaster);
    this.config = next;
    log.info('config reloaded', { file: this.configPath });
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
      fs.rmSync(this.pidFile, { force: true });
      log.info('engine stopped');
    })();
    return this.stopping;
  }
}

/** Run the engine in the foreground until SIGTERM/SIGINT; returns the exit code. */
export async function runEngine(configPath: string): Promise<number> {
  const daemon = await EngineDaemon.start(configPath);
  return new Promise((resolve) => {
    const stop = (sig: string) => {
      log.info('signal received', { signal: sig });
      daemon.stop().then(
        () => resolve(0),
        (err: unknown) => {
          log.error('unclean stop', { error: errorMessage(err) });
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      try {
        daemon.reload();
      } catch {
        // already logged; the old config keeps running
      }
    });
  });
}
