/**
 * What every Freight daemon shares: a pid file in run-dir (so `freight reload|down` can find it, and a
 * second copy refuses to start), SIGHUP → reload, SIGTERM/SIGINT → graceful stop.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FreightError } from './errors.js';
import type { Logger } from './log.js';

export function pidFilePath(runDir: string, name: string): string {
  return join(runDir, `${name}.pid`);
}

/** The pid in a pid file if that process is alive, else null. */
export function readLivePid(path: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(path, 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

/** Claim `<runDir>/<name>.pid`; refuses if a live process already holds it. */
export function claimPidFile(runDir: string, name: string): () => void {
  mkdirSync(runDir, { recursive: true });
  const path = pidFilePath(runDir, name);
  const other = readLivePid(path);
  if (other !== null && other !== process.pid) {
    throw new FreightError('DAEMON_RUNNING', `freight ${name} is already running (pid ${other}, ${path})`, {
      pid: other,
    });
  }
  writeFileSync(path, `${process.pid}\n`);
  return () => {
    if (readLivePid(path) === process.pid) rmSync(path, { force: true });
  };
}

export interface DaemonHooks {
  /**
   * Bring the daemon up once it holds its pid file, so a second copy refuses before it touches any
   * state; a throw releases the pid file and rejects runDaemon's promise.
   */
  start?(): Promise<void>;
  /** Reload configuration; throw to keep the old one (the error is logged). */
  reload(): Promise<void> | void;
  /** Stop gracefully; the process exits when this resolves. */
  stop(): Promise<void>;
}

/**
 * Claim the pid file, start the daemon (if it has a start hook) and wire its signals. Returns a promise
 * that resolves when the daemon has stopped.
 */
export function runDaemon(name: string, runDir: string, log: Logger, hooks: DaemonHooks): Promise<void> {
  const release = claimPidFile(runDir, name);
  if (!hooks.start) return untilStopped(log, hooks, release);
  return hooks.start().then(
    () => untilStopped(log, hooks, release),
    (err: unknown) => {
      release();
      throw err;
    },
  );
}

/** SIGHUP reloads; the first SIGTERM or SIGINT stops the daemon and releases its pid file. */
function untilStopped(log: Logger, hooks: DaemonHooks, release: () => void): Promise<void> {
  let stopping = false;
  return new Promise((resolve) => {
    const onHup = async () => {
      try {
        await hooks.reload();
        log.info('configuration reloaded');
      } catch (err) {
        log.error('config reload refused, keeping the running configuration', {
          reason: err instanceof Error ? err.message : String(err),
        });
      }
    };
    const onStop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal });
      try {
        await hooks.stop();
      } catch (err) {
        log.error('error while stopping', { reason: err instanceof Error ? err.message : String(err) });
      }
      release();
      process.off('SIGHUP', onHup);
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      resolve();
    };
    const onTerm = () => void onStop('SIGTERM');
    const onInt = () => void onStop('SIGINT');
    process.on('SIGHUP', onHup);
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
}
