/**
 * Engine benchmark (b): direct injection into the engine (LMTP, fsync'd spool) → per-domain queues →
 * sinks, end to end. Postfix's own relay rate on this machine is ~350–400 msg/s (POSTFIX-NOTES); the
 * goal is ≥ 5×. Sinks are Postfix's `smtp-sink` (C, cheap) on distinct loopback addresses, so the
 * CPU measured is the engine's and the load generator's. Prints intake msg/s (250 after fsync) and
 * end-to-end msg/s (until the engine reports every message delivered).
 *
 *   node --import tsx bench/engine-inject.bench.ts [--messages 20000] [--connections 20] [--domains 4]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { controlRequest } from '../sidecar/engine/control.js';
import type { EngineStatusReport } from '../sidecar/engine/control-types.js';
import { startDnsServer } from '../test/world/dns.js';
import { addr, freePort, testSubnet } from '../test/world/ports.js';
import { startEngine } from './lib/engine-proc.js';
import { runLoad, taggedMessage } from './lib/smtp-load.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    connections: { type: 'string', default: '20' },
    domains: { type: 'string', default: '4' },
    size: { type: 'string', default: '2000' },
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
const engine = startEngine(conf);
try {
  await engine.waitFor(/engine started/);
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  const load = await runLoad({
    host: '127.0.0.1',
    port,
    protocol: 'lmtp',
    connections: Number(values.connections),
    messages: MESSAGES,
    message: (i) =>
      taggedMessage(i, 'bench@app.test', [`user${i % 1000}@d${i % DOMAINS}.bench`], Number(values.size)),
  });
  const intakeMs = Date.now() - t0;
  const runDir = path.join(dir, 'run');
  let status: EngineStatusReport;
  for (;;) {
    status = (await controlRequest(runDir, { op: 'status' })) as EngineStatusReport;
    if (status.delivery.delivered + status.delivery.bounced >= load.accepted || Date.now() - t0 > 300_000)
      break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const totalMs = Date.now() - t0;
  const gen = process.cpuUsage(cpu0);
  console.log(
    JSON.stringify(
      {
        bench: 'engine-inject',
        messages: MESSAGES,
        accepted: load.accepted,
        refused: load.refused,
        intakeMsgPerSec: Math.round((load.accepted / intakeMs) * 1000),
        endToEndMsgPerSec: Math.round((status.delivery.delivered / totalMs) * 1000),
        delivered: status.delivery.delivered,
        bounced: status.delivery.bounced,
        loadgenCpuMsPerMsg: +((gen.user + gen.system) / 1000 / MESSAGES).toFixed(3),
        postfixBaselineMsgPerSec: '350-400 (POSTFIX-NOTES)',
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
