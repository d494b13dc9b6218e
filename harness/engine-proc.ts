/**
 * Spawns the engine as a real child process (for crash tests and benches) and waits for its log lines.
 * Uses harness/engine-runner.ts, which runs the same `engine` Command as `freight engine`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const RUNNER = fileURLToPath(new URL('./engine-runner.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface EngineProc {
  child: ChildProcess;
  output(): string;
  /** Resolves when the output (from `from`, default the start) has a line matching `re`. */
  waitFor(re: RegExp, timeoutMs?: number, from?: number): Promise<void>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Run one engine CLI command (`show queues --json`, `pause queue D`) to completion. */
export function runEngineCli(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * `nodeArgs` go before the script, e.g. `--cpu-prof` (which NODE_OPTIONS does not allow). `main` is a
 * compiled CLI entry point (bench/lib/build-sidecar.ts) to run instead of the TypeScript source.
 */
export function startEngine(
  configPath: string,
  env: NodeJS.ProcessEnv = {},
  nodeArgs: string[] = [],
  main?: string,
): EngineProc {
  const script = main ? [main] : ['--import', 'tsx', RUNNER];
  const argv = [...nodeArgs, ...script, 'engine', '--config', configPath];
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let done = false;
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of [...waiters]) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      done = true;
      for (const w of [...waiters]) w();
      resolve(code);
    }),
  );
  return {
    child,
    output: () => out,
    exited,
    waitFor(re, timeoutMs = 30_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (re.test(out.slice(from))) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          } else if (done) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`engine exited before ${re}; output:\n${out}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${re}; output:\n${out}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async kill(signal = 'SIGKILL') {
      if (!done) child.kill(signal);
      return exited;
    },
  };
}
