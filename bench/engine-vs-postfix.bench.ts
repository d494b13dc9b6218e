/**
 * Engine benchmark (a): the same load (smtp-source → private Postfix) delivered two ways to the same
 * sink (Postfix's C `smtp-sink`, so the sink costs little):
 *   native:  Postfix → smtp → sink                      (transport map entry straight to the sink)
 *   engine:  Postfix → LMTP → engine → MX lookup → sink (domain with `route-via engine`)
 * Prints both throughputs, their ratio (goal ≥ 0.8) and the engine process's CPU per message (goal
 * ≤ 1 ms), read from /proc for the engine child only (all its threads).
 *
 * Both paths first carry a warm-up load that is not measured: the engine is a long-running daemon, and
 * its first few thousand messages run partly in V8's interpreter before the JIT has compiled the hot
 * paths (about twice the CPU per message). The warm-up's own CPU per message is printed too.
 *
 *   node --import tsx bench/engine-vs-postfix.bench.ts [--messages 3000] [--sessions 20] [--size 2048]
 *     [--warmup 4000]      messages through each path before measuring
 *     [--commit-delay MS]  override the engine's spool-commit-delay
 *     [--tsx]              run the engine from source instead of compiled, as production runs it
 *     [--engine-only]      skip the Postfix-native run (for profiling the engine)
 *     [--node-arg ARG]     extra node/V8 flag for the engine process (repeatable)
 *   FREIGHT_BENCH_ENGINE_OUT=FILE saves the engine's output (e.g. with --node-arg=--trace-gc).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDnsServer } from '../harness/dns.js';
import { startEngine } from '../harness/engine-proc.js';
import { until } from '../harness/index.js';
import { addr, freePort, testSubnet } from '../harness/ports.js';
import { startTestPostfix } from '../harness/postfix.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { buildSidecar } from './lib/build-sidecar.js';
import { postfixRelayRate, smtpSource } from './lib/postfix-relay.js';
import { processCpu } from './lib/proc-cpu.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '3000' },
    warmup: { type: 'string', default: '4000' },
    sessions: { type: 'string', default: '20' },
    size: { type: 'string', default: '2048' },
    'commit-delay': { type: 'string' },
    tsx: { type: 'boolean', default: false },
    'node-arg': { type: 'string', multiple: true, default: [] },
    'engine-only': { type: 'boolean', default: false },
  },
});
const N = Number(values.messages);
const WARMUP = Number(values.warmup);

const net = testSubnet();
const sinkHost = addr(net, 10);
const dns = await startDnsServer({ host: addr(net, 1) });
const sinkPort = await freePort(sinkHost);
dns.mx('engine.bench', [{ exchange: 'mx.engine.bench', priority: 10 }]);
dns.a('mx.engine.bench', [sinkHost]);
// smtp-sink refuses to run as root without -u.
const sinkUser = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
const sink = spawn('/usr/sbin/smtp-sink', [...sinkUser, `${sinkHost}:${sinkPort}`, '1000'], {
  stdio: 'ignore',
});
const postfix = await startTestPostfix({
  globals: {
    'dns-server': dns.address,
    'remote-smtp-port': String(sinkPort),
    ...(values['commit-delay'] ? { 'spool-commit-delay': `${values['commit-delay']}ms` } : {}),
  },
  transports: [`native.bench smtp:[${sinkHost}]:${sinkPort}`],
  freightConf: [
    '<domain engine.bench>',
    '  route-via engine',
    '  max-smtp-out 20',
    '  max-msg-per-connection 1000',
    '  max-rcpt-per-message 100',
    '</domain>',
  ].join('\n'),
});
const buildDir = mkdtempSync(join(tmpdir(), 'freight-bench-build-'));
const engine = startEngine(
  postfix.configPath,
  {},
  [
    ...(values['node-arg'] ?? []),
    ...(process.env.FREIGHT_BENCH_CPU_PROF
      ? ['--cpu-prof', '--cpu-prof-dir', process.env.FREIGHT_BENCH_CPU_PROF]
      : []),
  ],
  values.tsx ? undefined : buildSidecar(buildDir),
);
// An interrupted run must not leave Postfix, the engine or the sink behind.
let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  await engine.kill('SIGTERM');
  if (process.env.FREIGHT_BENCH_ENGINE_OUT)
    writeFileSync(process.env.FREIGHT_BENCH_ENGINE_OUT, engine.output());
  await postfix.stop();
  sink.kill('SIGTERM');
  await dns.close();
  rmSync(buildDir, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => void cleanup().then(() => process.exit(130)));
try {
  await engine.waitFor(/engine started/);
  const enginePid = engine.child.pid as number;

  // native: Postfix relays straight to the sink.
  const nativeLoad = {
    host: postfix.host,
    port: postfix.port,
    readLog: () => postfix.readLog(),
    domains: ['native.bench'],
    sessions: Number(values.sessions),
    size: Number(values.size),
  };
  let nativeRate = Number.NaN;
  if (!values['engine-only']) {
    if (WARMUP > 0) await postfixRelayRate({ ...nativeLoad, messages: WARMUP });
    nativeRate = await postfixRelayRate({ ...nativeLoad, messages: N });
  }

  // engine: Postfix hands off to the engine, which delivers.
  // Counted in the accounting store (read-only, from this process): polling the engine's status 10 times
  // a second would itself cost the engine CPU, which this bench's per-message figure would then include.
  const acct = AcctStore.open(postfix.config.global.acctDb, { readonly: true });
  const countDelivered = acct.db.prepare(
    "SELECT count(*) AS n FROM acct WHERE type = 'd' AND path = 'engine'",
  );
  const delivered = () => (countDelivered.get() as { n: number }).n;
  const engineLoad = {
    host: postfix.host,
    port: postfix.port,
    sessions: Number(values.sessions),
    size: Number(values.size),
    from: 'bench@app.test',
    to: 'user@engine.bench',
  };
  const warm0 = processCpu(enginePid);
  if (WARMUP > 0) {
    await smtpSource({ ...engineLoad, messages: WARMUP });
    await until(() => delivered() >= WARMUP, 600_000, `${WARMUP} warm-up deliveries`, 100);
  }
  const cpu0 = processCpu(enginePid);
  const warmupCpu = cpu0.user + cpu0.system - warm0.user - warm0.system;
  const t0 = Date.now();
  await smtpSource({ ...engineLoad, messages: N });
  await until(() => delivered() >= WARMUP + N, 600_000, `${N} engine deliveries`, 100);
  acct.close();
  const engineMs = Date.now() - t0;
  const cpu1 = processCpu(enginePid);
  const [engineUser, engineSystem] = [cpu1.user - cpu0.user, cpu1.system - cpu0.system];
  const engineCpu = engineUser + engineSystem;

  const engineRate = (N / engineMs) * 1000;
  console.log(
    JSON.stringify(
      {
        bench: 'engine-vs-postfix',
        messages: N,
        warmupMessages: WARMUP,
        sessions: Number(values.sessions),
        postfixNativeMsgPerSec: Math.round(nativeRate),
        postfixViaEngineMsgPerSec: Math.round(engineRate),
        throughputRatio: +(engineRate / nativeRate).toFixed(2),
        throughputRatioGoal: '>= 0.8',
        engineCpuMsPerMsg: +(engineCpu / N).toFixed(3),
        engineUserSystemMsPerMsg: [+(engineUser / N).toFixed(3), +(engineSystem / N).toFixed(3)],
        engineCpuGoal: '<= 1 ms',
        engineWarmupCpuMsPerMsg: WARMUP > 0 ? +(warmupCpu / WARMUP).toFixed(3) : null,
        loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
      },
      null,
      2,
    ),
  );
} finally {
  await cleanup();
}
