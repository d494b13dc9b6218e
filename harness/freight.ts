/** Runs Freight itself as real child processes, the way an operator would: `freight <command> --config F`. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../sidecar/cli/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

export function freightArgv(args: string[]): string[] {
  return ['--import', 'tsx', MAIN, ...args];
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a one-shot command (`freight config check …`) to completion. */
export function runFreight(
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, freightArgv(args), {
      cwd: ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

export interface FreightDaemon {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** Resolves when a line of stdout/stderr matches. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
}

/** Start a long-running daemon (`freight engine --config F`) and keep its output. */
export function startFreight(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): FreightDaemon {
  const child = spawn(process.execPath, freightArgv(args), {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: Array<() => void> = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const w of waiters.splice(0)) w();
  });
  const d: FreightDaemon = {
    child,
    pid: child.pid!,
    exited,
    output: () => out,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${re}; output:\n${out}`)),
          timeoutMs,
        );
        const check = () => {
          const line = out.split('\n').find((l) => re.test(l));
          if (line !== undefined) {
            clearTimeout(timer);
            resolve(line);
          } else if (done) {
            clearTimeout(timer);
            reject(new Error(`process exited before ${re}; output:\n${out}`));
          } else waiters.push(check);
        };
        check();
      });
    },
    async stop(graceMs = 10_000) {
      if (done) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill(signal = 'SIGKILL') {
      if (done) return;
      child.kill(signal);
      await exited;
    },
  };
  return d;
}
