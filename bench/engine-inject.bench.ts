/**
 * Engine benchmark (b): direct injection into the engine (LMTP, fsync'd spool) → per-domain queues →
 * sinks, end to end, then — in the same run, on the same sinks, message count, size and concurrency —
 * Postfix's own relay rate (smtp-source → private Postfix → transport map → sinks); goal ≥ 5×. Sinks are Postfix's `smtp-sink` (C, cheap) on distinct loopback addresses, so the
 * CPU measured is the engine's and the load generator's. Prints intake msg/s (250 after fsync) and
 * end-to-end msg/s (until the engine reports every message delivered), and the engine's own CPU per
 * message read from /proc/<pid>/stat (utime+stime), which stays comparable on a busy shared machine
 * where throughput does not. Messages look like Postfix's lmtp hand-off (a Postfix Received header).
 *
 *   node --import tsx bench/engine-inject.bench.ts [--messages 20000] [--connections 20] [--domains 4]
 *     [--hold]             pause delivery: intake, spool and accounting alone (no Postfix phase)
 *     [--cpu-prof DIR]     run the engine under `node --cpu-prof`, profile written to DIR on exit
 *     [--tsx]              run the engine from source instead of compiled, as production runs it
 *
 * Postfix's smtp-sink refuses to run as root unless told which user to drop to (`-u nobody`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startDnsServer } from '../harness/dns.js';
import { startEngine } from '../harness/engine-proc.js';
import { addr, freePort, testSubnet } from '../harness/ports.js';
import { startTestPostfix } from '../harness/postfix.js';
import { runLoad, taggedMessage } from '../harness/smtp-load.js';
import { controlRequest } from '../sidecar/engine/control/client.js';
import type { EngineStatusReport } from '../sidecar/engine/control/protocol.js';
import { buildSidecar } from './lib/build-sidecar.js';
import { postfixRelayRate } from './lib/postfix-relay.js';
import { processCpu } from './lib/proc-cpu.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    connections: { type: 'string', default: '20' },
    domains: { type: 'string', default: '4' },
    size: { type: 'string', default: '2000' },
    hold: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    tsx: { type: 'boolean', default: false },
  },
});
const MESSAGES = Number(values.messages);
const DOMAINS = Number(values.domains);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-bench-inject-'));
const net = testSubnet();
const dns = await startDnsServer({ host: addr(net, 1) });
const sinkPort = await freePort(addr(net, 10));
const sinks: ChildProcess[] = [];
for (let d = 0; d < DOMAINS; d++) {
  const host = addr(net, 10 + d);
  dns.mx(`d${d}.bench`, [{ exchange: `mx.d${d}.bench`, priority: 10 }]);
  dns.a(`mx.d${d}.bench`, [host]);
  // -c: count, 1000: backlog; replies 250 to everything and discards the mail.
  const asRoot = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
  sinks.push(
    spawn('/usr/sbin/smtp-sink', [...asRoot, '-c', `${host}:${sinkPort}`, '1000'], { stdio: 'ignore' }),
  );
}
const port = await freePort();
const conf = path.join(dir, 'freight.conf');
fs.writeFileSync(
  conf,
  [
    'host-name engine.bench',
    `spool-dir ${dir}/spool`,
    `run-dir ${dir}/run`,
    `acct-db ${dir}/acct.db`,
    `smtp-listener 127.0.0.1:${port}`,
    `dns-server ${dns.address}`,
    `remote-smtp-port ${sinkPort}`,
    '<source 127.0.0.1/32>',
    '  always-allow-relaying yes',
    '</source>',
    '<domain *>',
    '  max-smtp-out 10',
    '  max-msg-per-connection 1000',
    '</domain>',
    '',
  ].join('\n'),
);
const profDir = values['cpu-prof'];
/** The trace header Postfix adds before its lmtp transport hands a message over. */
const postfixReceived = (i: number): string => {
  const qid = `4Z${(0x10000000 + i).toString(16).toUpperCase()}`;
  return (
    `Received: from app.test (unknown [127.0.0.1])\r\n\tby freight.bench (Postfix) with ESMTP id ${qid}\r\n` +
    `\tfor <user${i % 1000}@d${i % DOMAINS}.bench>; Thu,  5 Mar 2026 06:26:05 +0000 (UTC)\r\n`
  );
};
const engine = startEngine(
  conf,
  {},
  profDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profDir)}`] : [],
  values.tsx ? undefined : buildSidecar(path.join(dir, 'build')),
);
const runDir = path.join(dir, 'run');
const engineCpu = () => processCpu(engine.child.pid as number);
const engineCpuMs = (): number => {
  const c = engineCpu();
  return c.user + c.system;
};
/** The same load through a private Postfix to the same sinks (the engine is stopped by then). */
async function postfixRelay(): Promise<number> {
  const domains = Array.from({ length: DOMAINS }, (_, d) => `d${d}.bench`);
  const postfix = await startTestPostfix({
    transports: domains.map((d, i) => `${d} smtp:[${addr(net, 10 + i)}]:${sinkPort}`),
  });
  try {
    return await postfixRelayRate({
      host: postfix.host,
      port: postfix.port,
      readLog: () => postfix.readLog(),
      domains,
      messages: MESSAGES,
      sessions: Number(values.connections),
      size: Number(values.size),
    });
  } finally {
    await postfix.stop();
  }
}
try {
  await engine.waitFor(/engine started/);
  if (values.hold) {
    for (let d = 0; d < DOMAINS; d++) await controlRequest(runDir, { op: 'pause', domain: `d${d}.bench` });
  }
  const cpu0 = process.cpuUsage();
  const engineCpu0 = engineCpuMs();
  const split0 = engineCpu();
  const t0 = Date.now();
  const load = await runLoad({
    host: '127.0.0.1',
    port,
    protocol: 'lmtp',
    connections: Number(values.connections),
    messages: MESSAGES,
    message: (i) =>
      taggedMessage(
        i,
        'bench@app.test',
        [`user${i % 1000}@d${i % DOMAINS}.bench`],
        Number(values.size),
        postfixReceived(i),
      ),
  });
  const intakeMs = Date.now() - t0;
  const intakeCpuMs = engineCpuMs() - engineCpu0;
  const split1 = engineCpu();
  let status: EngineStatusReport;
  for (;;) {
    if (values.hold) {
      status = (await controlRequest(runDir, { op: 'status' })) as EngineStatusReport;
      break;
    }
    status = (await controlRequest(runDir, { op: 'status' })) as EngineStatusReport;
    if (status.delivery.delivered + status.delivery.bounced >= load.accepted || Date.now() - t0 > 300_000)
      break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const totalMs = Date.now() - t0;
  const totalCpuMs = engineCpuMs() - engineCpu0;
  const gen = process.cpuUsage(cpu0);
  await engine.kill('SIGTERM');
  const endToEnd = (status.delivery.delivered / totalMs) * 1000;
  const postfixRate = values.hold ? null : await postfixRelay();
  console.log(
    JSON.stringify(
      {
        bench: 'engine-inject',
        messages: MESSAGES,
        accepted: load.accepted,
        refused: load.refused,
        intakeMsgPerSec: Math.round((load.accepted / intakeMs) * 1000),
        endToEndMsgPerSec: Math.round(endToEnd),
        delivered: status.delivery.delivered,
        bounced: status.delivery.bounced,
        engineCpuMsPerMsgIntake: +(intakeCpuMs / load.accepted).toFixed(3),
        engineUserSystemMsPerMsgIntake: [
          +((split1.user - split0.user) / load.accepted).toFixed(3),
          +((split1.system - split0.system) / load.accepted).toFixed(3),
        ],
        engineCpuMsPerMsgTotal: values.hold ? null : +(totalCpuMs / load.accepted).toFixed(3),
        loadgenCpuMsPerMsg: +((gen.user + gen.system) / 1000 / MESSAGES).toFixed(3),
        postfixRelayMsgPerSec: postfixRate === null ? null : Math.round(postfixRate),
        engineVsPostfix: postfixRate === null ? null : +(endToEnd / postfixRate).toFixed(2),
        goal: '>= 5x Postfix relay',
      },
      null,
      2,
    ),
  );
} finally {
  await engine.kill('SIGTERM');
  for (const s of sinks) s.kill('SIGTERM');
  await dns.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
