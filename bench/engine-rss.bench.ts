/**
 * Engine benchmark (c): resident memory with 1 million recipients queued (goal ≤ ~500 MB). The real
 * spool and the real scheduler hold the mail (their queues paused, so nothing leaves); messages are
 * spooled in-process (bypassing SMTP, which is measured by engine-inject). Then the spool is reopened
 * from disk in a fresh process to measure recovery time and RSS after a restart.
 *
 *   node --expose-gc --import tsx bench/engine-rss.bench.ts [--messages 100000] [--rcpts 10]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AcctStore } from '../sidecar/acct/store.js';
import { AcctWriter } from '../sidecar/acct/writer.js';
import { BounceClassifier } from '../sidecar/classify/classifier.js';
import { loadConfig } from '../sidecar/config/load.js';
import { createScheduler } from '../sidecar/engine/schedule/scheduler.js';
import { Spool } from '../sidecar/engine/spool/spool.js';
import { SuppressionList } from '../sidecar/suppress/list.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '100000' },
    rcpts: { type: 'string', default: '10' },
    phase: { type: 'string', default: 'main' },
    dir: { type: 'string' },
  },
});
const MESSAGES = Number(values.messages);
const RCPTS = Number(values.rcpts);
const DOMAINS = 20;

const mb = (n: number) => Math.round(n / 1024 ** 2);
function measure(): { rssMb: number; heapMb: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rssMb: mb(m.rss), heapMb: mb(m.heapUsed) };
}

async function phase(dir: string, fill: boolean): Promise<void> {
  const config = loadConfig(path.join(dir, 'freight.conf'));
  const store = AcctStore.open(config.global.acctDb);
  const t0 = Date.now();
  const spool = await Spool.open({ dir: config.global.spoolDir });
  const recovered = spool.takeRecovered(() => undefined);
  const scheduler = createScheduler({
    config,
    spool,
    acct: new AcctWriter(store),
    classifier: BounceClassifier.load(),
    suppression: SuppressionList.open(store),
    dsnSink: { bounced: () => undefined },
  });
  for (let d = 0; d < DOMAINS; d++) await scheduler.pause(`d${d}.bench`);
  for (const m of recovered) scheduler.submit(m);
  const recoveryMs = Date.now() - t0;
  if (fill) {
    const body = Buffer.from(`Subject: rss bench\r\nMessage-ID: <x@bench>\r\n\r\n${'x'.repeat(1500)}\r\n`);
    for (let i = 0; i < MESSAGES; i += 200) {
      const batch = [];
      for (let k = i; k < Math.min(MESSAGES, i + 200); k++) {
        batch.push(
          spool.accept(
            {
              sender: 'bulk@app.test',
              envId: null,
              ret: null,
              jobId: 'job-rss',
              vmtaRequest: null,
              postfixQueueId: null,
              messageId: `<m${k}@app.test>`,
              sourceIp: '127.0.0.1',
              recipients: Array.from({ length: RCPTS }, (_, r) => ({
                rcpt: `user${k}.${r}@d${(k + r) % DOMAINS}.bench`,
                orcpt: null,
                notify: null,
              })),
            },
            body,
          ),
        );
      }
      for (const m of await Promise.all(batch)) scheduler.submit(m);
    }
  }
  const status = await scheduler.status();
  const mem = measure();
  console.log(
    JSON.stringify({
      phase: fill ? 'filled' : 'restarted',
      queuedRecipients: status.queuedRecipients,
      messages: spool.messageCount,
      ...mem,
      ...(fill ? {} : { recoveryMs }),
    }),
  );
  await scheduler.close();
  await spool.close();
  store.close();
}

if (values.phase !== 'main') {
  await phase(values.dir!, values.phase === 'fill');
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-bench-rss-'));
  fs.writeFileSync(
    path.join(dir, 'freight.conf'),
    [
      'host-name engine.bench',
      `spool-dir ${dir}/spool`,
      `run-dir ${dir}/run`,
      `acct-db ${dir}/acct.db`,
      // Nothing is delivered: every queue is paused and the resolver points at a closed loopback port.
      'dns-server 127.0.0.1:9',
      '',
    ].join('\n'),
  );
  const self = fileURLToPath(import.meta.url);
  try {
    for (const p of ['fill', 'restart']) {
      const r = spawnSync(
        process.execPath,
        [
          '--expose-gc',
          '--import',
          'tsx',
          self,
          '--phase',
          p,
          '--dir',
          dir,
          '--messages',
          String(MESSAGES),
          '--rcpts',
          String(RCPTS),
        ],
        { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, FREIGHT_LOG_LEVEL: 'warning' } },
      );
      if (r.status !== 0) throw new Error(`phase ${p} failed (${r.status})`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
