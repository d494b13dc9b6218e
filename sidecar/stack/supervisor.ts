/**
 * `freight up`: runs the private Postfix instance and every Freight daemon as child processes, like
 * Postfix's master: restarts a daemon that dies (with backoff), stops everything on SIGTERM/SIGINT.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { claimPidFile } from '../common/daemon.js';
import { createLogger } from '../common/log.js';
import { recordStack } from '../common/stack-record.js';
import type { FreightConfig, HostPort } from '../config/model.js';
import { masterPid, startPostfix, stopPostfix } from '../postfix/instance.js';
import { renderPostfix } from '../postfix/render.js';

const log = createLogger('up');

/** Daemons in start order: the engine first so Postfix can hand off mail as soon as it starts. */
export const DAEMONS = ['engine', 'policy', 'ramp', 'tailer', 'api'] as const;

const hp = (a: HostPort) => `${a.host}:${a.port}`;

export function listenerTable(config: FreightConfig, daemons: readonly string[]): Array<[string, string]> {
  const g = config.global;
  const rows: Array<[string, string]> = [
    ['postfix', `smtpd ${hp(g.postfixListener)}  (maillog ${g.maillog})`],
  ];
  const describe: Record<string, string> = {
    engine: `${g.smtpListenerProtocol} ${hp(g.smtpListener)}`,
    policy: `policy ${hp(g.policyListener)}${g.policySocket ? ` + unix:${g.policySocket}` : ''}`,
    ramp: `socketmap ${hp(g.rampListener)}`,
    tailer: `following ${g.maillog}`,
    api: `http ${hp(g.httpMgmtListener)}`,
  };
  for (const d of daemons) rows.push([d, describe[d] ?? '']);
  return rows;
}

interface Child {
  name: string;
  proc: ChildProcess | null;
  restarts: number;
  startedAt: number;
}

export async function runStack(configPath: string, config: FreightConfig): Promise<number> {
  const release = claimPidFile(config.global.runDir, 'up');
  const unrecord = recordStack(configPath);
  const { layout } = renderPostfix(config);
  const commandDir = config.global.postfixCommandDir;
  if (masterPid(layout)) {
    log.warn('a Postfix instance from an earlier run is still up; restarting it', { dir: layout.configDir });
    await stopPostfix(commandDir, layout);
  }
  const children: Child[] = DAEMONS.map((name) => ({ name, proc: null, restarts: 0, startedAt: 0 }));
  let stopping = false;

  const spawnChild = (c: Child) => {
    // Same interpreter and loader flags as this process (tsx in a checkout, plain node when built).
    const proc = spawn(
      process.execPath,
      [...process.execArgv, process.argv[1]!, c.name, '--config', configPath],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    c.proc = proc;
    c.startedAt = Date.now();
    proc.on('exit', (code, signal) => {
      c.proc = null;
      if (stopping) return;
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(c.restarts, 5));
      c.restarts = Date.now() - c.startedAt > 60_000 ? 0 : c.restarts + 1;
      log.warn(`${c.name} exited; restarting`, { code, signal, inMs: delay });
      setTimeout(() => {
        if (!stopping) spawnChild(c);
      }, delay);
    });
  };

  try {
    for (const c of children.filter((c) => c.name === 'engine')) spawnChild(c);
    await startPostfix(commandDir, layout);
    for (const c of children.filter((c) => c.name !== 'engine')) spawnChild(c);
  } catch (err) {
    stopping = true;
    await stopChildren(children);
    unrecord();
    release();
    throw err;
  }

  process.stdout.write(`freight up (pid ${process.pid}), config ${configPath}\n`);
  for (const [name, where] of listenerTable(config, DAEMONS))
    process.stdout.write(`  ${name.padEnd(8)} ${where}\n`);
  process.stdout.write('Ctrl-C or `freight down` stops everything.\n');

  // Watch Postfix like the daemons: if its master dies, start it again. The timer also keeps this
  // process alive while it waits for a signal.
  const watchdog = setInterval(() => {
    if (stopping || masterPid(layout)) return;
    log.warn('Postfix master is gone; starting it again');
    startPostfix(commandDir, layout).catch((err: Error) =>
      log.error('cannot restart Postfix', { reason: err.message }),
    );
  }, 5000);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.on('SIGHUP', () => {
      for (const c of children) c.proc?.kill('SIGHUP');
    });
  });
  stopping = true;
  clearInterval(watchdog);
  log.info('stopping the stack');
  await stopChildren(children);
  await stopPostfix(commandDir, layout);
  unrecord();
  release();
  process.stdout.write('freight: stopped\n');
  return 0;
}

async function stopChildren(children: Child[]): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          const proc = c.proc;
          if (!proc || proc.exitCode !== null) return resolve();
          const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
          proc.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          proc.kill('SIGTERM');
        }),
    ),
  );
}
