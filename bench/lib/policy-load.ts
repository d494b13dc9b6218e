/**
 * The policy benchmark's load generator: many persistent connections, one request in flight on each (as
 * smtpd does), replies timed where they are read. It is built to stay out of the numbers it measures:
 *  - it runs in its own process (LoadProcess), loaded with `--require tsx/cjs`, which compiles in the
 *    loading thread: `--import tsx` adds a module-loader thread whose heap is collected some 8 s after
 *    start, with every V8 helper thread, taking both cores for 5–10 ms in the middle of a run;
 *  - requests are encoded once into one Buffer per connection (off the JS heap), so its garbage
 *    collections stay small and short (with the stream as 100,000 strings on its heap they took up to
 *    10–25 ms);
 *  - no promise, timer or string per reply: a reply is found by scanning bytes for the empty line, and
 *    its latency is taken in the socket's read callback, from the moment its request was written;
 *  - paced connections wake on their own schedule; a request whose previous reply was late is sent at
 *    once (one request in flight per connection), and such late sends are counted.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

/** One connection's requests: request i is `data` from `ends[i - 1]` (0 for i = 0) to `ends[i]`. */
export interface EncodedStream {
  data: Buffer;
  ends: Uint32Array;
}

export function encodeStream(requests: string[]): EncodedStream {
  const ends = new Uint32Array(requests.length);
  let size = 0;
  for (let i = 0; i < requests.length; i++) {
    size += Buffer.byteLength(requests[i]!);
    ends[i] = size;
  }
  const data = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const r of requests) at += data.write(r, at);
  return { data, ends };
}

export interface ReplayResult {
  decisions: number;
  seconds: number;
  /** Milliseconds from writing a request to reading its whole reply, in completion order. */
  latencies: Float64Array;
  /** Replies other than DUNNO. */
  deferred: number;
  /** Paced requests sent after their due time because the previous reply on the connection was late. */
  late: number;
}

export interface ReplayOptions {
  port: number;
  host?: string;
  streams: EncodedStream[];
  /** Requests [from, to) of every stream. */
  from: number;
  to: number;
  /** Decisions/s over all connections (open-loop schedule); without it, as fast as replies come. */
  rate?: number;
}

const NL = 10;
const DUNNO = Buffer.from('action=DUNNO\n\n');

/** One connection's share of a replay. */
class LoadConnection {
  private next: number;
  private sentAt = 0;
  private due = 0;
  private reply: Buffer | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly fire = () => {
    this.timer = null;
    this.send();
  };

  constructor(
    private readonly socket: net.Socket,
    private readonly stream: EncodedStream,
    private readonly run: Replay,
    from: number,
    private readonly to: number,
    private readonly gapMs: number,
  ) {
    this.next = from;
    socket.on('data', (chunk: Buffer) => this.read(chunk));
  }

  start(firstDue: number): void {
    this.due = firstDue;
    this.schedule();
  }

  private schedule(): void {
    if (this.next >= this.to) {
      this.run.finished();
      return;
    }
    if (this.gapMs === 0) {
      this.send();
      return;
    }
    const wait = this.due - performance.now();
    if (wait > 0) this.timer = setTimeout(this.fire, wait);
    else {
      // Due already: the previous reply took longer than the gap between this connection's requests.
      if (this.sentAt > 0) this.run.late++;
      this.send();
    }
  }

  private send(): void {
    const { data, ends } = this.stream;
    const start = this.next === 0 ? 0 : ends[this.next - 1]!;
    this.next++;
    this.due += this.gapMs;
    this.sentAt = performance.now();
    this.socket.write(data.subarray(start, ends[this.next - 1]!));
  }

  private read(chunk: Buffer): void {
    const now = performance.now();
    const buf = this.reply === null ? chunk : Buffer.concat([this.reply, chunk]);
    const end = endOfReply(buf);
    if (end < 0) {
      this.reply = buf;
      return;
    }
    this.reply = end === buf.length ? null : buf.subarray(end);
    this.run.record(now - this.sentAt, buf.compare(DUNNO, 0, DUNNO.length, 0, end) !== 0);
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}

/** Index just past the empty line ending the first reply, or -1. */
function endOfReply(buf: Buffer): number {
  let i = buf.indexOf(NL);
  while (i >= 0 && i + 1 < buf.length) {
    if (buf[i + 1] === NL) return i + 2;
    i = buf.indexOf(NL, i + 1);
  }
  return -1;
}

class Replay {
  latencies: Float64Array;
  count = 0;
  deferred = 0;
  late = 0;
  private running: number;
  readonly done: Promise<void>;
  private resolve!: () => void;

  constructor(total: number, connections: number) {
    this.latencies = new Float64Array(total);
    this.running = connections;
    this.done = new Promise((r) => {
      this.resolve = r;
    });
  }

  record(ms: number, deferred: boolean): void {
    this.latencies[this.count++] = ms;
    if (deferred) this.deferred++;
  }

  finished(): void {
    if (--this.running === 0) this.resolve();
  }
}

export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** Replay the streams' requests [from, to) over fresh connections, one per stream. */
export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const { streams, from, to, rate } = opts;
  const sockets = await Promise.all(streams.map(() => connect(opts.port, opts.host)));
  const failure = new Promise<never>((_, reject) => {
    for (const s of sockets) {
      s.on('error', reject);
      s.on('close', () => reject(new Error('policy server closed a benchmark connection')));
    }
  });
  failure.catch(() => {});
  const run = new Replay(streams.length * (to - from), streams.length);
  const gapMs = rate ? (streams.length / rate) * 1000 : 0;
  const conns = streams.map((s, i) => new LoadConnection(sockets[i]!, s, run, from, to, gapMs));
  const t0 = performance.now();
  // Connections start spread over one gap, so the requests of a paced run are evenly interleaved.
  for (const [i, c] of conns.entries()) c.start(t0 + (gapMs * i) / conns.length);
  try {
    await Promise.race([run.done, failure]);
  } finally {
    for (const c of conns) c.stop();
    for (const s of sockets) {
      s.removeAllListeners('close');
      s.destroy();
    }
  }
  return {
    decisions: run.count,
    seconds: (performance.now() - t0) / 1000,
    latencies: run.latencies.subarray(0, run.count),
    deferred: run.deferred,
    late: run.late,
  };
}

type ToLoad =
  | { type: 'streams'; streams: EncodedStream[] }
  | { type: 'replay'; opts: Omit<ReplayOptions, 'streams'> };
type FromLoad = { type: 'result'; result: ReplayResult } | { type: 'error'; message: string };

/** The generator in a child process; one replay at a time. */
export class LoadProcess {
  private constructor(private readonly child: ChildProcess) {}

  static async start(streams: EncodedStream[]): Promise<LoadProcess> {
    const self = fileURLToPath(import.meta.url);
    const child = spawn(
      process.execPath,
      ['--require', 'tsx/cjs', '-e', `require(${JSON.stringify(self)}).serveLoadRequests()`],
      {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        serialization: 'advanced',
      },
    );
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    child.send({ type: 'streams', streams } satisfies ToLoad);
    return new LoadProcess(child);
  }

  replay(opts: Omit<ReplayOptions, 'streams'>): Promise<ReplayResult> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`load generator exited (${code})`));
      this.child.once('exit', onExit);
      this.child.once('message', (msg: FromLoad) => {
        this.child.off('exit', onExit);
        if (msg.type === 'result') resolve(msg.result);
        else reject(new Error(msg.message));
      });
      this.child.send({ type: 'replay', opts } satisfies ToLoad);
    });
  }

  close(): void {
    this.child.disconnect();
  }
}

/** Child side of LoadProcess: replays on request until the parent disconnects. */
export function serveLoadRequests(): void {
  let streams: EncodedStream[] = [];
  process.on('disconnect', () => process.exit(0));
  process.on('message', (msg: ToLoad) => {
    if (msg.type === 'streams') {
      // Typed arrays arrive as plain Uint8Arrays.
      streams = msg.streams.map((s) => ({
        data: Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength),
        ends: s.ends,
      }));
      return;
    }
    replay({ ...msg.opts, streams }).then(
      (result) => process.send!({ type: 'result', result } satisfies FromLoad),
      (err: unknown) => process.send!({ type: 'error', message: String(err) } satisfies FromLoad),
    );
  });
}
