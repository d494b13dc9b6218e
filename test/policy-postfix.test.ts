/**
 * The policy daemon behind a real Postfix (check_policy_service in the rendered main.cf), spoken to by
 * swaks as an independent SMTP client.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { type FreightDaemon, runFreight, startFreight } from '../harness/freight.js';
import { startTestPostfix, type TestPostfix } from '../harness/postfix.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { SuppressionList } from '../sidecar/suppress/list.js';

let pf: TestPostfix;
let policy: FreightDaemon | null = null;

const startPolicy = async () => {
  const d = startFreight(['policy', '--config', pf.configPath]);
  await d.waitFor(/info: listening/);
  return d;
};

before(async () => {
  pf = await startTestPostfix({
    freightConf: ['<policy-limit per-sender>', '  key sender', '  rate 3/h', '</policy-limit>'].join('\n'),
  });
  policy = await startPolicy();
});

after(async () => {
  await policy?.stop();
  await pf?.stop();
});

/** One SMTP transaction up to RCPT; resolves with the server's reply to RCPT TO (the last before QUIT). */
function rcptReply(from: string, to: string): Promise<string> {
  const args = ['--server', pf.host, '--port', String(pf.port), '--from', from, '--to', to];
  return new Promise((resolve, reject) => {
    execFile(
      'swaks',
      [...args, '--quit-after', 'RCPT', '--helo', 'client.test'],
      { timeout: 30_000 },
      (err, stdout) => {
        const replies = stdout
          .split('\n')
          .filter((l) => /^(<-|<\*\*)\s+\d{3}/.test(l) && !/^(<-|<\*\*)\s+221/.test(l));
        const last = replies.at(-1);
        if (last === undefined) reject(err ?? new Error(`no reply in swaks output:\n${stdout}`));
        else resolve(last.replace(/^(<-|<\*\*)\s+/, ''));
      },
    );
  });
}

test('a sender over its limit gets 450 4.7.1 at RCPT while another sender passes', async () => {
  for (let i = 0; i < 3; i++) assert.match(await rcptReply('heavy@apps.test', `r${i}@dest.test`), /^250 /);
  assert.match(await rcptReply('heavy@apps.test', 'r4@dest.test'), /^450 4\.7\.1 .*per-sender/);
  assert.match(await rcptReply('light@apps.test', 'r5@dest.test'), /^250 /);
});

test('a suppressed recipient gets 5xx 5.1.1 at RCPT, and the refusals are accounted', async () => {
  const store = AcctStore.open(pf.config.global.acctDb);
  try {
    SuppressionList.open(store).add({ address: 'gone@dest.test', reason: 'bad-mailbox', source: 'bounce' });
  } finally {
    store.close();
  }
  // The daemon picks up other processes' suppression changes within a second. Polled from a sender of
  // its own: attempts accepted before the change count against their sender's 3/h.
  let reply = '';
  for (let i = 0; i < 20 && !/^5/.test(reply); i++) {
    reply = await rcptReply(`poll${i}@apps.test`, 'gone@dest.test');
    if (!/^5/.test(reply)) await new Promise((r) => setTimeout(r, 250));
  }
  assert.match(reply, /^5\d\d 5\.1\.1 /);
  const db = new Database(pf.config.global.acctDb, { readonly: true });
  try {
    let rows: Array<{ queue: string; dsnStatus: string; rcpt: string }> = [];
    for (let i = 0; i < 40 && rows.length < 2; i++) {
      rows = db
        .prepare("SELECT queue, dsnStatus, rcpt FROM acct WHERE type = 'rj' AND path = 'policy' ORDER BY id")
        .all() as typeof rows;
      if (rows.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(
      rows.map((r) => [r.queue, r.dsnStatus, r.rcpt]),
      [
        ['policy/per-sender', '4.7.1', 'r4@dest.test'],
        ['policy/suppression', '5.1.1', 'gone@dest.test'],
      ],
    );
  } finally {
    db.close();
  }
});

test('freight policy stats shows the throttled sender', async () => {
  const res = await runFreight(['policy', 'stats', '--config', pf.configPath, '--json']);
  assert.equal(res.code, 0, res.stderr);
  const stats = JSON.parse(res.stdout) as { mostLimited: Array<{ key: string; rejected: number }> };
  assert.deepEqual(
    stats.mostLimited.map((k) => [k.key, k.rejected]),
    [['heavy@apps.test', 1]],
  );
  const text = await runFreight(['policy', 'stats', '--config', pf.configPath]);
  assert.match(text.stdout, /most limited keys[\s\S]*heavy@apps\.test/);
});

test('counters survive a daemon restart', async () => {
  await policy!.stop();
  policy = await startPolicy();
  assert.match(await rcptReply('heavy@apps.test', 'r6@dest.test'), /^450 4\.7\.1/);
  assert.match(await rcptReply('light@apps.test', 'r7@dest.test'), /^250 /);
});

test("with the daemon down, Postfix's default_action applies (a 4xx, never a 2xx)", async () => {
  await policy!.stop();
  policy = null;
  assert.match(await rcptReply('light@apps.test', 'r8@dest.test'), /^4\d\d /);
  await pf.waitForLog(/warning: problem talking to server 127\.0\.0\.1:\d+/);
});
