/**
 * Policy counters at scale: thousands of keys are saved to the counter store in slices (the main thread
 * is never held for all of them at once), come back after a real daemon restart (rows in SQLite), and
 * idle keys are swept in slices too.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { freePort } from '../harness/ports.js';
import { createLogger } from '../sidecar/common/log.js';
import { loadConfig } from '../sidecar/config/load.js';
import { PolicyClient } from '../sidecar/policy/client.js';
import { decodeCounterBatch } from '../sidecar/policy/counter-batch.js';
import { startPolicyDaemon } from '../sidecar/policy/daemon.js';
import { Limiter } from '../sidecar/policy/limiter.js';
import { buildPolicySettings } from '../sidecar/policy/limits-config.js';

const rcpt = (sender: string, n: number) =>
  `request=smtpd_access_policy\nprotocol_state=RCPT\nsender=${sender}\nrecipient=r${n}@dest.test\n\n`;

/** A Limiter built from one `<policy-limit>` block, as the daemon builds it from freight.conf. */
function limiterFrom(block: string): Limiter {
  const dir = mkdtempSync(join(tmpdir(), 'freight-policy-limiter-'));
  try {
    const conf = join(dir, 'freight.conf');
    writeFileSync(conf, block);
    return new Limiter(buildPolicySettings(loadConfig(conf)).limits);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('counters of thousands of keys reach the counter store in slices and are restored after a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'freight-policy-store-'));
  try {
    const port = await freePort();
    const conf = join(dir, 'freight.conf');
    writeFileSync(
      conf,
      [
        `acct-db ${join(dir, 'acct.db')}`,
        `run-dir ${join(dir, 'run')}`,
        `policy-listener 127.0.0.1:${port}`,
        '<policy>',
        '  snapshot-interval 100ms',
        '</policy>',
        '<policy-limit per-sender>',
        '  key sender',
        '  rate 2/h',
        '  rate 3/d',
        '</policy-limit>',
      ].join('\n'),
    );
    const log = createLogger('policy');
    // 2,500 senders: more keys than one slice of periodic work, so the changes go in several messages.
    const senders = Array.from({ length: 2500 }, (_, i) => `s${i}@apps.test`);
    let daemon = await startPolicyDaemon(loadConfig(conf), log);
    let client = await PolicyClient.connect({ host: '127.0.0.1', port });
    for (const [i, s] of senders.entries()) assert.equal(await client.askRaw(rcpt(s, i)), 'DUNNO');
    client.close();
    await new Promise((r) => setTimeout(r, 500)); // a few snapshot intervals: saved while running
    const db = new Database(join(dir, 'policy-counters.db'), { readonly: true });
    const rows = db.prepare('SELECT key, windows FROM policy_counters').all() as Array<{
      key: string;
      windows: string;
    }>;
    db.close();
    assert.equal(rows.length, senders.length);
    for (const row of rows) {
      const windows = JSON.parse(row.windows) as Array<{ perMs: number; amounts: number[] }>;
      assert.deepEqual(
        windows.map((w) => [w.perMs, w.amounts.reduce((a, b) => a + b, 0)]),
        [
          [3_600_000, 1],
          [86_400_000, 1],
        ],
        row.key,
      );
    }

    await daemon.stop();
    daemon = await startPolicyDaemon(loadConfig(conf), log);
    client = await PolicyClient.connect({ host: '127.0.0.1', port });
    // Each sender had used 1 of 2 an hour before the restart: one more passes, the next is refused.
    for (const s of [senders[0]!, senders[1234]!, senders[2499]!]) {
      assert.equal(await client.askRaw(rcpt(s, 1)), 'DUNNO');
      assert.match(await client.askRaw(rcpt(s, 2)), /^DEFER_IF_PERMIT 4\.7\.1 .*per-sender/);
    }
    client.close();
    await daemon.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a sweep in slices forgets every idle key, keeps busy ones, and reports them for deletion', () => {
  const limiter = limiterFrom('<policy-limit per-sender>\n  key sender\n  rate 10/m\n</policy-limit>\n');
  const lc = limiter.counters[0]!;
  let now = 1_700_000_000_000;
  for (let i = 0; i < 2500; i++) lc.get(`idle${i}@x.test`, now, limiter.dirty)!.windows[0]!.add(1, now);
  limiter.takeChanges();
  now += 120_000; // the idle keys' minute window has emptied
  const busy = lc.get('busy@x.test', now, limiter.dirty)!;
  busy.windows[0]!.add(1, now);

  const passes: boolean[] = [];
  for (let done = false; !done; ) {
    done = limiter.sweep(now, 1000);
    passes.push(done);
    // A key that appears in the middle of a pass is not lost.
    if (passes.length === 1) lc.get('late@x.test', now, limiter.dirty)!.windows[0]!.add(1, now);
  }
  assert.deepEqual(passes, [false, false, true]);
  assert.deepEqual([...lc.keys.keys()].sort(), ['busy@x.test', 'late@x.test']);

  // Taken in slices of 1,000: the removed keys first, then the changed ones.
  const deletes: string[] = [];
  const upserts: string[] = [];
  for (let batch = limiter.takeChanges(1000); batch; batch = limiter.takeChanges(1000)) {
    const changes = decodeCounterBatch(batch);
    assert.ok(changes.deletes.length + changes.upserts.length <= 1000);
    for (const d of changes.deletes) deletes.push(`${d.limit}/${d.key}`);
    for (const u of changes.upserts) upserts.push(u.key);
  }
  assert.equal(new Set(deletes).size, 2500);
  assert.ok(deletes.every((d) => d.startsWith('per-sender/idle')));
  assert.deepEqual(upserts.sort(), ['busy@x.test', 'late@x.test']);
});

test('changes taken in slices carry every changed key once, with its windows as saved', () => {
  const limiter = limiterFrom(
    '<policy-limit per-client>\n  key client_address\n  rate 5/m\n</policy-limit>\n',
  );
  const now = 1_700_000_000_000;
  for (let i = 0; i < 2345; i++) {
    const k = limiter.counters[0]!.get(`10.0.${i >> 8}.${i & 255}`, now + i, limiter.dirty)!;
    k.windows[0]!.add((i % 3) + 1, now + i);
  }
  const seen = new Map<string, number>();
  for (let batch = limiter.takeChanges(1000); batch; batch = limiter.takeChanges(1000)) {
    for (const u of decodeCounterBatch(batch).upserts) {
      assert.ok(!seen.has(u.key), `${u.key} sent twice`);
      seen.set(
        u.key,
        u.windows[0]!.amounts.reduce((a, b) => a + b, 0),
      );
    }
  }
  assert.equal(seen.size, 2345);
  assert.equal(seen.get('10.0.0.0'), 1);
  assert.equal(seen.get('10.0.9.40'), ((9 * 256 + 40) % 3) + 1);
});
