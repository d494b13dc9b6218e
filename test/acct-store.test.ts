import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { commands } from '../sidecar/acct/cli.js';
import { PMTA_CSV_COLUMNS } from '../sidecar/acct/export.js';
import { pruneAcct } from '../sidecar/acct/prune.js';
import { list, summary, trail } from '../sidecar/acct/query.js';
import type { AcctRecord } from '../sidecar/acct/record.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { AcctWriter } from '../sidecar/acct/writer.js';
import { packageRoot } from '../sidecar/common/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'freight-acct-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const H = 3_600_000;
const T0 = Date.UTC(2024, 4, 1, 10, 0, 0);

function rec(p: Partial<AcctRecord>): AcctRecord {
  return { type: 'd', timeLogged: T0, path: 'engine', rcpt: 'a@gmail.com', vmta: 'mta1', ...p };
}

test('writer batches rows, dedupe key makes re-import a no-op, summary matches raw counts', () => {
  const store = AcctStore.open(join(dir, 'a.db'));
  assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  const w = new AcctWriter(store, { maxBatch: 7 });
  for (let i = 0; i < 50; i++) {
    w.write(
      rec({
        type: i % 5 === 0 ? 't' : 'd',
        timeLogged: T0 + i * 60_000 + 1234,
        dsnDiag:
          i % 5 === 0
            ? `smtp;421 4.7.0 [TSS04] Messages from 192.0.2.${i} temporarily deferred`
            : 'smtp;250 ok',
        dedupeKey: `log:${i}`,
      }),
    );
  }
  for (let i = 0; i < 50; i++) w.write(rec({ dedupeKey: `log:${i}` }));
  w.write(rec({ type: 'b', rcpt: 'x@yahoo.com', bounceCat: 'bad-mailbox', timeLogged: T0 + 30 * 60_000 }));
  w.close();
  assert.equal((store.db.prepare('SELECT COUNT(*) n FROM acct').get() as { n: number }).n, 51);
  const all = summary(store, { since: T0 - H });
  assert.deepEqual([all[0]!.delivered, all[0]!.deferred, all[0]!.bounced], [40, 10, 1]);
  assert.equal(all[0]!.topDeferrals[0]!.count, 10, 'deferrals from different IPs group into one diagnostic');
  // A since inside an hour combines raw rows of the partial hour with rollups of whole hours.
  const partial = summary(store, { since: T0 + 30 * 60_000, by: 'domain' });
  const raw = store.db
    .prepare('SELECT rcptDomain, type, COUNT(*) n FROM acct WHERE timeLogged >= ? GROUP BY 1, 2')
    .all(T0 + 30 * 60_000) as Array<{ rcptDomain: string; type: string; n: number }>;
  const gmail = partial.find((r) => r.group === 'gmail.com')!;
  assert.equal(gmail.delivered, raw.find((r) => r.rcptDomain === 'gmail.com' && r.type === 'd')!.n);
  assert.equal(partial.find((r) => r.group === 'yahoo.com')!.bounced, 1);
  assert.equal(list(store, { types: ['b'] }).length, 1);
  store.close();
});

test('trail follows a message across the Postfix hand-off to the engine', () => {
  const store = AcctStore.open(join(dir, 't.db'));
  const w = new AcctWriter(store);
  w.write(rec({ type: 'r', path: 'postfix', postfixQueueId: '4FZk1x2', messageId: null, timeLogged: T0 }));
  w.write(
    rec({
      type: 'd',
      path: 'postfix',
      postfixQueueId: '4FZk1x2',
      messageId: 'E123',
      dsnDiag: '250 2.0.0 queued as E123',
      timeLogged: T0 + 1000,
    }),
  );
  w.write(rec({ type: 't', path: 'engine', messageId: 'E123', timeLogged: T0 + 2000 }));
  w.write(rec({ type: 'd', path: 'engine', messageId: 'E123', timeLogged: T0 + 3000 }));
  w.write(rec({ type: 'd', path: 'engine', messageId: 'OTHER', timeLogged: T0 + 4000 }));
  w.close();
  const t = trail(store, '4FZk1x2');
  assert.deepEqual(
    t.map((r) => `${r.path}:${r.type}`),
    ['postfix:r', 'postfix:d', 'engine:t', 'engine:d'],
  );
  assert.equal(trail(store, 'E123').length, 4);
  assert.equal(trail(store, 'a@gmail.com').length, 5);
  store.close();
});

test('export writes PowerMTA CSV that a CSV reader loads (quotes, commas, newlines)', () => {
  const db = join(dir, 'e.db');
  const store = AcctStore.open(db);
  const w = new AcctWriter(store);
  w.write(
    rec({
      type: 'b',
      dsnDiag: 'smtp;550 5.1.1 "no such user", sorry\r\nbye',
      bounceCat: 'bad-mailbox',
      dsnStatus: '5.1.1',
      jobId: 'j1',
    }),
  );
  w.write(rec({ type: 'd', dsnDiag: 'smtp;250 ok', timeLogged: T0 + 1 }));
  w.write(rec({ type: 't', timeLogged: T0 + 2 }));
  w.close();
  store.close();
  const script = `import { commands } from ${JSON.stringify(join(packageRoot, 'sidecar/acct/cli.ts'))}; process.exitCode = await commands.find((c) => c.name === 'acct export').run(['--db', ${JSON.stringify(db)}]);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    cwd: packageRoot,
  });
  assert.equal(r.status, 0, r.stderr);
  const py = spawnSync(
    'python3',
    ['-c', 'import csv,sys,json; r=list(csv.DictReader(sys.stdin)); print(json.dumps(r))'],
    { input: r.stdout, encoding: 'utf8' },
  );
  assert.equal(py.status, 0, py.stderr);
  const rows = JSON.parse(py.stdout) as Array<Record<string, string>>;
  assert.deepEqual(Object.keys(rows[0]!), [...PMTA_CSV_COLUMNS]);
  assert.equal(
    r.stdout.split('\r\n')[0],
    'type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool',
  );
  assert.deepEqual(
    rows.map((x) => x.type),
    ['b', 'd'],
  );
  assert.equal(rows[0]!.dsnDiag, 'smtp;550 5.1.1 "no such user", sorry\r\nbye');
  assert.equal(rows[0]!.timeLogged, '2024-05-01 10:00:00+0000');
  assert.ok(commands.length === 4);
});

test('retention prunes old rows in batches and keeps new ones', async () => {
  const store = AcctStore.open(join(dir, 'p.db'));
  const w = new AcctWriter(store, { maxBatch: 1000 });
  const now = T0 + 100 * 24 * H;
  for (let i = 0; i < 12_000; i++) w.write(rec({ timeLogged: T0 + (i % 2 === 0 ? 0 : 95 * 24 * H) }));
  w.close();
  const res = await pruneAcct(store, 90 * 24 * H, { now, firstBatch: 5000 });
  assert.equal(res.deleted.acct, 6000);
  assert.equal((store.db.prepare('SELECT COUNT(*) n FROM acct').get() as { n: number }).n, 6000);
  assert.equal(summary(store, {})[0]!.delivered, 6000);
  store.close();
});

test('bad records never reach acct: they are quarantined with their code, the good rows around them are written', () => {
  const store = AcctStore.open(join(dir, 'v.db'));
  const w = new AcctWriter(store, { source: 'test' });
  w.write(rec({ rcpt: 'first@gmail.com' }));
  w.write(rec({ type: 'zz' as 'd' }));
  w.write(rec({ bounceCat: 'nope' as 'other' }));
  w.write(rec({ rcpt: 'last@gmail.com' }));
  w.close();
  const rcpts = store.db.prepare('SELECT rcpt FROM acct ORDER BY id').pluck().all();
  assert.deepEqual(rcpts, ['first@gmail.com', 'last@gmail.com']);
  const q = store.db.prepare('SELECT source, code, reason FROM acct_quarantine ORDER BY id').all() as {
    source: string;
    code: string;
    reason: string;
  }[];
  assert.deepEqual(
    q.map((r) => [r.source, r.code]),
    [
      ['test', 'ACCT_BAD_RECORD'],
      ['test', 'ACCT_BAD_RECORD'],
    ],
  );
  assert.match(q[0]!.reason, /unknown type/);
  assert.match(q[1]!.reason, /unknown bounceCat/);
  store.close();
});
