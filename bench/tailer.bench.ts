/**
 * Tailer throughput: ingest a realistic 1-million-line maillog into SQLite (every row written, with its
 * dedupe key and rollups, as `freight acct import` does) and run pflogsumm on the same file in the same
 * run; print lines/s of both. Goal: faster than pflogsumm while writing every row.
 *
 *   node --import tsx bench/tailer.bench.ts [--lines N]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AcctStore } from '../sidecar/acct/store.js';
import { importLogs } from '../sidecar/tailer/import.js';
import { generateMaillog } from './gen-maillog.js';

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
} finally {
  rmSync(dir, { recursive: true, force: true });
}
