/**
 * A message that Postfix hands to the engine and whose destination defers every
 * attempt gets `t` rows on the retry-after schedule, then a `b` (message-expired) row at bounce-after;
 * the engine's RFC 3464 DSN goes back into Postfix (postfix-listener), which delivers it to the envelope
 * sender's domain (routed by the transport map to a second sink). `freight acct trail <postfix queue id>`
 * shows the Postfix hand-off (imported from the maillog) and every engine attempt.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runFreight } from '../harness/freight.js';
import type { Sink } from '../harness/index.js';
import { until } from '../harness/index.js';
import type { TestPostfix } from '../harness/postfix.js';
import { type PostfixEngineWorld, startPostfixEngineWorld } from '../harness/postfix-engine-world.js';
import { submit } from '../harness/smtp-client.js';
import type { AcctRecord } from '../sidecar/acct/record.js';
import { AcctStore } from '../sidecar/acct/store.js';

let world: PostfixEngineWorld;
let deferring: Sink;
let senderMx: Sink;
let postfix: TestPostfix;

before(async () => {
  world = await startPostfixEngineWorld({
    sinks: [
      {
        at: 21,
        script: { rcptTo: [{ match: /@slow\.test$/, code: 451, message: '4.7.1 Try again later' }] },
      },
      { at: 22, keepRaw: true },
    ],
    mx: { 'slow.test': 21 },
    // The sender's domain stays on the Postfix path, straight to its own sink.
    transports: (ip, port) => [`apps.test smtp:[${ip(22)}]:${port}`],
    freightConf: (ip) => `
<virtual-mta mta1>
  smtp-source-host ${ip(10)} mta1.freight.test
</virtual-mta>
<domain slow.test>
  route-via engine
  virtual-mta mta1
  retry-after 1s
  bounce-after 4s
</domain>
`,
    engine: 'process',
  });
  postfix = world.postfix;
  [deferring, senderMx] = world.sinks as [Sink, Sink];
});

after(async () => {
  await world?.stop();
});

test('expiry through Postfix: t rows, a message-expired b row, and a DSN delivered by Postfix to the sender', async () => {
  const sent = Date.now();
  await submit({
    host: postfix.host,
    port: postfix.port,
    from: 'app@apps.test',
    to: 'victim@slow.test',
    subject: 'will expire',
    messageId: '<expire-1@apps.test>',
  });

  await senderMx.waitFor((s) => s.arrivals.length >= 1, 60_000, 'the DSN at the sender domain');
  const dsn = senderMx.arrivals[0]!;
  assert.equal(dsn.mailFrom, '', 'DSN sent from the null sender');
  assert.deepEqual(dsn.rcptTo, ['app@apps.test']);
  assert.match(dsn.headers['content-type']![0]!, /^multipart\/report; report-type=delivery-status;/);
  const raw = dsn.raw!.toString('latin1');
  // It went through Postfix (its Received header) after leaving the engine.
  assert.match(raw, /Received: from [^\r\n]*\r?\n?[^\r\n]*\(Postfix\)/);
  assert.match(raw, /Final-Recipient: rfc822; victim@slow\.test\r\n/);
  assert.match(raw, /Action: failed\r\n/);
  assert.match(raw, /Status: 5\.4\.7\r\n/);
  assert.match(raw, /Diagnostic-Code: smtp; [^\r\n]*4\.7\.1 Try again later/);
  assert.match(raw, /Content-Type: message\/(rfc822|rfc822-headers)\r\n/);
  assert.match(raw, /Message-ID: <expire-1@apps\.test>/i);
  assert.ok(deferring.arrivals.length === 0, 'the deferring sink never accepted the message');

  // Postfix's side: the hand-off to the engine (lmtp, 250 queued as …) and the DSN's delivery.
  const [handoff] = await postfix.waitForLog(
    /postfix\/freight\/lmtp\[\d+\]: \w+: to=<victim@slow\.test>.*status=sent \(250 /,
  );
  const queueId = /: ([0-9A-F]+): to=</.exec(handoff!)![1]!;
  await postfix.waitForLog(/postfix\/smtp\[\d+\]: \w+: to=<app@apps\.test>.*status=sent/);

  // Engine rows: r, then t per attempt, then b message-expired, linked to the Postfix queue id.
  const store = AcctStore.open(join(postfix.dir, 'acct.db'), { readonly: true });
  let engineRows: AcctRecord[] = [];
  try {
    await until(
      () => {
        engineRows = store.db
          .prepare("SELECT * FROM acct WHERE path = 'engine' AND postfixQueueId = ? ORDER BY id")
          .all(queueId) as AcctRecord[];
        return engineRows.some((r) => r.type === 'b');
      },
      15_000,
      'the engine b row',
    );
  } finally {
    store.close();
  }
  const types = engineRows.map((r) => r.type);
  assert.equal(types[0], 'r');
  assert.equal(types.at(-1), 'b');
  const ts = engineRows.filter((r) => r.type === 't');
  assert.ok(ts.length >= 2, `rows: ${types.join(',')}`);
  assert.deepEqual(types.slice(1, -1), Array(types.length - 2).fill('t'));
  assert.deepEqual(
    ts.map((r) => r.attempt),
    ts.map((_, i) => i + 1),
  );
  for (const t of ts) assert.equal(t.dsnDiag, 'smtp;451 4.7.1 Try again later');
  const b = engineRows.at(-1)!;
  assert.equal(b.bounceCat, 'message-expired');
  assert.equal(b.dsnStatus, '5.4.7');
  assert.ok(b.timeLogged - sent >= 4000, 'not before bounce-after');
  assert.ok(b.timeLogged - sent < 30_000, 'and not long after it');
  assert.equal(deferring.refusals.length >= ts.length, true, 'each t row is a refusal at the sink');

  // The tailer is not running here: import the maillog, then one trail joins both halves.
  const imported = await runFreight(['acct', 'import', postfix.maillog, '--config', postfix.configPath]);
  assert.equal(imported.code, 0, imported.stderr);
  const trail = await runFreight(['acct', 'trail', queueId, '--json', '--config', postfix.configPath]);
  assert.equal(trail.code, 0, trail.stderr);
  const rows = JSON.parse(trail.stdout) as AcctRecord[];
  const hand = rows.filter((r) => r.path === 'handoff' && r.type === 'd' && r.rcpt === 'victim@slow.test');
  assert.equal(hand.length, 1, `trail: ${JSON.stringify(rows.map((r) => [r.path, r.type, r.rcpt]))}`);
  assert.equal(hand[0]!.queue, 'freight-engine');
  assert.equal(hand[0]!.postfixQueueId, queueId);
  const engineInTrail = rows.filter((r) => r.path === 'engine').map((r) => `${r.type}${r.attempt ?? ''}`);
  assert.deepEqual(
    engineInTrail,
    engineRows.map((r) => `${r.type}${r.attempt ?? ''}`),
    'every engine attempt is in the trail',
  );
});
