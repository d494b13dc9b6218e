/**
 * Tailer throughput: ingest a realistic 1-million-line maillog into SQLite (every row written, with its
 * dedupe key and rollups, as `freight acct import` does) and run pflogsumm on the same file in the same
 * run; print lines/s of both. Goal: faster than pflogsumm while writing every row.
 *
 * Then lag: the live tailer follows a file written at 3,000 lines/s for 10 s; for every 10 ms batch it
 * prints how long until that batch's rows are committed in SQLite (goal: under 1 s).
 *
 *   node --import tsx bench/tailer.bench.ts [--lines N]
 */
import { execFile } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AcctStore } from '../sidecar/acct/store.js';
import { loadConfig } from '../sidecar/config/load.js';
import { Tailer } from '../sidecar/tailer/daemon.js';
import { importLogs } from '../sidecar/tailer/import.js';
import { Ingest } from '../sidecar/tailer/ingest.js';
import { generateMaillog } from './gen-maillog.js';
import { requirePeer } from './lib/peer.js';

const { values } = parseArgs({ options: { lines: { type: 'string', default: '1000000' } } });
const lines = Number(values.lines);
const dir = mkdtempSync(join(tmpdir(), 'freight-tailer-bench-'));
try {
  const log = join(dir, 'maillog');
  await generateMaillog(log, lines);
  const mb = statSync(log).size / 1e6;
  process.stdout.write(`maillog: ${lines} lines, ${mb.toFixed(0)} MB\n`);

  const store = AcctStore.open(join(dir, 'acct.db'));
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const r = await importLogs(store, [log], { timeZone: 'UTC', engine: null });
  const tailerS = Number(process.hrtime.bigint() - t0) / 1e9;
  const c1 = process.cpuUsage(c0);
  const tailerCpu = (c1.user + c1.system) / 1e6;
  const rows = (store.db.prepare('SELECT count(*) AS n FROM acct').get() as { n: number }).n;
  store.close();

  requirePeer('pflogsumm', 'pflogsumm');
  // bash's `times` reports the CPU pflogsumm used: on a shared box wall time alone says little.
  const t1 = process.hrtime.bigint();
  const times = await new Promise<string>((resolve, reject) =>
    execFile('bash', ['-c', 'pflogsumm "$1" >/dev/null && times', 'bench', log], (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  const pflogS = Number(process.hrtime.bigint() - t1) / 1e9;
  const child = times.trim().split('\n')[1] ?? '';
  const secs = [...child.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  const pflogCpu = secs.reduce((a, b) => a + b, 0);

  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  process.stdout.write(
    `freight tailer: ${fmt(r.stats.lines / tailerS)} lines/s wall, ${fmt(r.stats.lines / tailerCpu)} lines/s CPU ` +
      `(${tailerS.toFixed(2)} s wall, ${tailerCpu.toFixed(2)} s CPU, ${fmt(rows)} rows in SQLite, ` +
      `${r.stats.kinds.unknown ?? 0} unknown lines)\n` +
      `pflogsumm:      ${fmt(lines / pflogS)} lines/s wall, ${fmt(lines / pflogCpu)} lines/s CPU ` +
      `(${pflogS.toFixed(2)} s wall, ${pflogCpu.toFixed(2)} s CPU, report only)\n` +
      `ratio (CPU):    ${(pflogCpu / tailerCpu).toFixed(2)}× pflogsumm\n`,
  );
  await measureLag(dir, log);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

async function measureLag(dir: string, source: string): Promise<void> {
  const rate = 3000;
  const seconds = 10;
  const all = readFileSync(source, 'utf8')
    .split('\n')
    .slice(0, rate * seconds);
  const live = join(dir, 'live.log');
  writeFileSync(live, '');
  // A real config file, so the tailer gets every directive's default (retention, prune schedule …).
  const confPath = join(dir, 'lag.conf');
  writeFileSync(confPath, `acct-db ${join(dir, 'lag.db')}\nmaillog ${live}\nmaillog-timezone UTC\n`);
  const config = loadConfig(confPath);
  const tailer = await Tailer.start(config);
  const store = AcctStore.open(config.global.acctDb, { readonly: true });
  const count = store.db.prepare('SELECT count(*) AS n FROM acct');
  const expect = new Ingest({ timeZone: 'UTC', classifier: null, engine: null });
  const perBatch = rate / 100;
  const waiting: { rows: number; at: number }[] = [];
  const lags: number[] = [];
  const t0 = Date.now();
  let i = 0;
  while (i < all.length) {
    const batch = all.slice(i, i + perBatch);
    i += perBatch;
    appendFileSync(live, `${batch.join('\n')}\n`);
    expect.text(batch.join('\n'));
    waiting.push({ rows: expect.stats.rows, at: Date.now() });
    const n = (count.get() as { n: number }).n;
    while (waiting.length > 0 && waiting[0]!.rows <= n) lags.push(Date.now() - waiting.shift()!.at);
    const due = t0 + (i / rate) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
  }
  while (waiting.length > 0 && Date.now() - waiting[0]!.at < 10_000) {
    const n = (count.get() as { n: number }).n;
    while (waiting.length > 0 && waiting[0]!.rows <= n) lags.push(Date.now() - waiting.shift()!.at);
    await new Promise((r) => setTimeout(r, 5));
  }
  await tailer.stop();
  store.close();
  lags.sort((a, b) => a - b);
  const q = (p: number) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))] ?? NaN;
  process.stdout.write(
    `lag at ${rate} lines/s: p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${lags.at(-1)} ms ` +
      `(${lags.length} batches, ${waiting.length} not committed within 10 s)\n`,
  );
}
