/**
 * Accounting store benchmark: batched insert rate through AcctWriter, then `acct summary --since 24h`
 * (by domain) time at 1M rows and at --rows (default 1M; pass --rows 10000000 for the 10M figure).
 * Rows are spread over the last 30 days, so 24 h holds ~1/30 of them.
 *   node --import tsx bench/acct-store.bench.ts [--rows 10000000] [--db /tmp/x.db]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { summary } from '../sidecar/acct/query.js';
import type { AcctRecord, AcctType } from '../sidecar/acct/record.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { AcctWriter } from '../sidecar/acct/writer.js';

const { values } = parseArgs({
  options: { rows: { type: 'string', default: '1000000' }, db: { type: 'string' } },
});
const target = Number(values.rows);
const dir = values.db ? null : mkdtempSync(join(tmpdir(), 'freight-bench-'));
const dbPath = values.db ?? join(dir!, 'acct.db');
const store = AcctStore.open(dbPath);
const writer = new AcctWriter(store, { maxBatch: 1000 });
const now = Date.now();
const span = 30 * 24 * 3_600_000;
const domains = [
  'gmail.com',
  'yahoo.com',
  'outlook.com',
  'hotmail.com',
  'aol.com',
  'icloud.com',
  'gmx.de',
  'web.de',
  't-online.de',
  'orange.fr',
  'comcast.net',
];
const types: AcctType[] = ['d', 'd', 'd', 'd', 'd', 'd', 'r', 't', 't', 'b'];

function row(i: number): AcctRecord {
  const domain = i % 7 === 0 ? `corp${i % 500}.example` : domains[i % domains.length]!;
  const type = types[i % types.length]!;
  return {
    type,
    timeLogged: now - span + Math.floor((i / target) * span),
    path: i % 3 === 0 ? 'postfix' : 'engine',
    rcpt: `user${i}@${domain}`,
    rcptDomain: domain,
    vmta: `mta${i % 4}`,
    jobId: `job${i % 50}`,
    messageId: `m${i}`,
    dsnDiag:
      type === 't'
        ? `smtp;421 4.7.0 [TSS04] Messages from 192.0.2.${i % 250} temporarily deferred`
        : type === 'b'
          ? 'smtp;550 5.1.1 user unknown'
          : 'smtp;250 2.0.0 ok',
    bounceCat: type === 'b' ? 'bad-mailbox' : null,
  };
}

function timeSummary(label: string): void {
  const runs: number[] = [];
  for (let k = 0; k < 3; k++) {
    const t = performance.now();
    summary(store, { since: Date.now() - 24 * 3_600_000, by: 'domain' });
    runs.push(performance.now() - t);
  }
  process.stdout.write(
    `summary --since 24h --by domain at ${label}: ${Math.min(...runs).toFixed(1)} ms (best of 3; ${runs.map((r) => r.toFixed(0)).join('/')} ms)\n`,
  );
}

let written = 0;
const t0 = performance.now();
for (; written < target; written++) {
  writer.write(row(written));
  if (written + 1 === 1_000_000 && target > 1_000_000) {
    writer.flush();
    timeSummary('1M rows');
  }
}
writer.close();
const secs = (performance.now() - t0) / 1000;
process.stdout.write(
  `inserted ${target} rows in ${secs.toFixed(1)} s: ${Math.round(target / secs)} rows/s (batches of 1000, indexes + rollups)\n`,
);
timeSummary(`${target / 1e6}M rows`);
store.close();
if (dir) rmSync(dir, { recursive: true, force: true });
