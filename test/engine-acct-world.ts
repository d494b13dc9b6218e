/**
 * A real engine process (for SIGKILL and fault-injection tests) between a retrying LMTP client and a
 * sink MX, and the accounting check those tests share: at rest, every (engine message, recipient) that
 * reached the sink has exactly one `d` row and exactly one `r` row, and no row names a delivery the
 * sink never saw.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startDnsServer, type TestDns } from '../harness/dns.js';
import { type EngineProc, startEngine } from '../harness/engine-proc.js';
import { until } from '../harness/index.js';
import { addr, freePort, testSubnet } from '../harness/ports.js';
import { type Sink, startSink } from '../harness/sink.js';
import type { SinkScript } from '../harness/sink-script.js';
import { controlRequest } from '../sidecar/engine/control/client.js';
import type { EngineStatusReport } from '../sidecar/engine/control/protocol.js';

export const DOMAIN = 'acct.test';

export interface EngineWorld {
  dir: string;
  port: number;
  sink: Sink;
  confPath: string;
  acctDb: string;
  /** Start the engine (with FREIGHT_FAULT when given) and wait until it is up. */
  start(fault?: string): Promise<EngineProc>;
  /** Resolves once the running engine's spool is empty (everything delivered). */
  drained(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function engineWorld(
  opts: { maxSmtpOut?: number; script?: SinkScript } = {},
): Promise<EngineWorld> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-acct-crash-'));
  const net = testSubnet();
  const dns: TestDns = await startDnsServer({ host: addr(net, 1) });
  const sink = await startSink({ host: addr(net, 10), port: 0, script: opts.script });
  dns.mx(DOMAIN, [{ exchange: `mx.${DOMAIN}`, priority: 10 }]);
  dns.a(`mx.${DOMAIN}`, [addr(net, 10)]);
  const port = await freePort();
  const confPath = path.join(dir, 'freight.conf');
  fs.writeFileSync(
    confPath,
    [
      'host-name engine.test',
      `spool-dir ${dir}/spool`,
      `run-dir ${dir}/run`,
      `acct-db ${dir}/acct.db`,
      `smtp-listener 127.0.0.1:${port}`,
      `dns-server ${dns.address}`,
      `remote-smtp-port ${sink.port}`,
      '<source 127.0.0.1/32>',
      '  always-allow-relaying yes',
      '</source>',
      '<domain *>',
      `  max-smtp-out ${opts.maxSmtpOut ?? 4}`,
      '  retry-after 1s',
      '</domain>',
      '',
    ].join('\n'),
  );
  const running = new Set<EngineProc>();
  return {
    dir,
    port,
    sink,
    confPath,
    acctDb: path.join(dir, 'acct.db'),
    async start(fault) {
      const engine = startEngine(confPath, fault ? { FREIGHT_FAULT: fault } : {});
      running.add(engine);
      void engine.exited.then(() => running.delete(engine));
      await engine.waitFor(/engine started/);
      return engine;
    },
    async drained(timeoutMs = 60_000) {
      const status = () =>
        controlRequest(path.join(dir, 'run'), { op: 'status' }) as Promise<EngineStatusReport>;
      await until(async () => (await status()).spool.messages === 0, timeoutMs, 'the spool to drain', 100);
    },
    async close() {
      for (const e of running) await e.kill('SIGKILL');
      await sink.close();
      await dns.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `engine message id|recipient` of every delivery the sink accepted (an id repeats for a duplicate). */
export function sinkDeliveries(sink: Sink): string[] {
  const out: string[] = [];
  for (const a of sink.arrivals) {
    const m = /\(Freight\) with (?:LMTP|ESMTP) id (\w+)/.exec(a.rawHeaders);
    assert.ok(m, `arrival without the engine's Received header: ${a.rawHeaders.slice(0, 200)}`);
    for (const rcpt of a.rcptTo) out.push(`${m[1]}|${rcpt}`);
  }
  return out;
}

/** `messageId|rcpt` → number of rows of `type` (engine path). */
export function acctCounts(dbPath: string, type: 'r' | 'd'): Map<string, number> {
  const db = new Database(dbPath, { readonly: true });
  try {
    const rows = db
      .prepare(
        "SELECT messageId, rcpt, count(*) AS n FROM acct WHERE path = 'engine' AND type = ? GROUP BY 1, 2",
      )
      .all(type) as { messageId: string; rcpt: string; n: number }[];
    return new Map(rows.map((r) => [`${r.messageId}|${r.rcpt}`, r.n]));
  } finally {
    db.close();
  }
}

/**
 * With the engine stopped and every message delivered: one `d` and one `r` row per delivered
 * (message, recipient), none for anything else. Returns how many deliveries the sink saw twice.
 */
export function assertAcctMatchesSink(dbPath: string, sink: Sink): number {
  const delivered = sinkDeliveries(sink);
  const unique = new Set(delivered);
  for (const type of ['d', 'r'] as const) {
    const counts = acctCounts(dbPath, type);
    const missing = [...unique].filter((k) => !counts.has(k));
    assert.deepEqual(missing, [], `${type} rows missing for deliveries at the sink`);
    const doubled = [...counts].filter(([, n]) => n !== 1);
    assert.deepEqual(doubled, [], `${type} rows not exactly one per recipient event`);
    const extra = [...counts.keys()].filter((k) => !unique.has(k));
    assert.deepEqual(extra, [], `${type} rows for deliveries the sink never saw`);
  }
  return delivered.length - unique.size;
}
