/**
 * Sink MX servers in a child process (sink-runner.ts), for measurements that must not depend on the
 * engine's event loop: under CPU load a sink sharing the engine's loop stamps arrivals late and in
 * bursts. The parent keeps a mirror of what each sink reports (arrivals, refusals, connections).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WorldError } from './errors.js';
import type { SinkScript } from './sink-script.js';

export interface SinkProcessSpec {
  host: string;
  port: number;
  /** RegExps travel as { $re, flags } (see serializeScript). */
  script?: unknown;
}

export function serializeScript(script: SinkScript | undefined): unknown {
  return script === undefined
    ? undefined
    : JSON.parse(
        JSON.stringify(script, (_k, v) => (v instanceof RegExp ? { $re: v.source, flags: v.flags } : v)),
      );
}

export function reviveScript(raw: unknown): SinkScript {
  if (raw === undefined) return {};
  return JSON.parse(JSON.stringify(raw), (_k, v) =>
    v && typeof v === 'object' && typeof v.$re === 'string' ? new RegExp(v.$re, v.flags) : v,
  ) as SinkScript;
}

export class RemoteSink {
  readonly arrivals: Array<{ time: number; sourceIp: string }> = [];
  refusals = 0;
  open = 0;
  max = 0;
  readonly waiters = new Set<() => void>();

  constructor(readonly host: string) {}

  waitFor(pred: (s: RemoteSink) => boolean, timeoutMs: number, what: string): Promise<void> {
    if (pred(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred(this)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new WorldError('WORLD_SINK_TIMEOUT', `sink ${this.host}: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }
}

export interface SinkProcess {
  sinks: Map<string, RemoteSink>;
  close(): Promise<void>;
}

export async function startSinkProcess(
  specs: Array<{ host: string; port: number; script?: SinkScript }>,
): Promise<SinkProcess> {
  const runner = fileURLToPath(new URL('./sink-runner.ts', import.meta.url));
  const wire: SinkProcessSpec[] = specs.map((s) => ({ ...s, script: serializeScript(s.script) }));
  const child: ChildProcess = fork(runner, [JSON.stringify(wire)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const sinks = new Map(specs.map((s) => [s.host, new RemoteSink(s.host)]));
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) =>
      reject(new WorldError('WORLD_SINK_LISTEN', `sink process exited (${code})`)),
    );
    child.on(
      'message',
      (m: {
        ready?: boolean;
        host?: string;
        arrivals?: RemoteSink['arrivals'];
        refusals?: number;
        open?: number;
        max?: number;
      }) => {
        if (m.ready) return resolve();
        const s = sinks.get(m.host ?? '');
        if (!s) return;
        s.arrivals.push(...(m.arrivals ?? []));
        s.refusals += m.refusals ?? 0;
        s.open = m.open ?? s.open;
        s.max = m.max ?? s.max;
        for (const w of [...s.waiters]) w();
      },
    );
  });
  child.removeAllListeners('exit');
  return {
    sinks,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.disconnect();
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}
