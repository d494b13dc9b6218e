import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AcctRecord } from '../sidecar/acct/record.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { isFreightError } from '../sidecar/common/errors.js';
import { loadConfig } from '../sidecar/config/load.js';
import {
  PolicyDecider,
  type StoreHealth,
  type SuppressionCheck,
  Transaction,
} from '../sidecar/policy/decide.js';
import { Limiter } from '../sidecar/policy/limiter.js';
import { buildPolicySettings, type PolicySettings } from '../sidecar/policy/limits-config.js';
import { emptyRequest, type PolicyRequest } from '../sidecar/policy/request.js';
import { SlidingWindow } from '../sidecar/policy/sliding-window.js';
import { SuppressionList } from '../sidecar/suppress/list.js';

function settingsFrom(text: string): PolicySettings {
  const dir = mkdtempSync(join(tmpdir(), 'freight-policy-conf-'));
  try {
    const path = join(dir, 'freight.conf');
    writeFileSync(path, text);
    return buildPolicySettings(loadConfig(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function rcpt(over: Partial<PolicyRequest>): PolicyRequest {
  return { ...emptyRequest(), request: 'smtpd_access_policy', protocol_state: 'RCPT', ...over };
}

function harness(text: string, opts: { suppression?: SuppressionCheck; health?: Partial<StoreHealth> } = {}) {
  const settings = settingsFrom(text);
  let now = 1_700_000_000_000;
  const records: AcctRecord[] = [];
  const health: StoreHealth = { counters: true, suppression: true, ...opts.health };
  const limiter = new Limiter(settings.limits);
  const decider = new PolicyDecider(
    settings,
    limiter,
    opts.suppression ?? null,
    health,
    (r) => records.push(r),
    () => now,
  );
  return {
    decider,
    limiter,
    records,
    health,
    advance: (ms: number) => (now += ms),
    ask: (req: Partial<PolicyRequest>, txn = new Transaction()) => decider.decide(rcpt(req), txn),
  };
}

const PER_SENDER = `
<policy-limit per-sender>
  key sender
  rate 3/m
  rate 5/h
</policy-limit>
`;

test('a sender over its limit is deferred with 4.7.1 naming the limit; other senders pass', () => {
  const h = harness(PER_SENDER);
  const txn = new Transaction();
  for (let i = 0; i < 3; i++)
    assert.equal(h.ask({ sender: 'a@x.com', recipient: `r${i}@y.com`, instance: '1' }, txn), 'DUNNO');
  const reply = h.ask({ sender: 'A@x.com', recipient: 'r4@y.com', instance: '1' }, txn);
  assert.match(reply, /^DEFER_IF_PERMIT 4\.7\.1 .*per-sender.*a@x\.com.*3\/m/);
  assert.equal(h.ask({ sender: 'b@x.com', recipient: 'r@y.com', instance: '2' }), 'DUNNO');
  assert.equal(h.records.length, 1);
  const rec = h.records[0]!;
  assert.equal(rec.type, 'rj');
  assert.equal(rec.path, 'policy');
  assert.equal(rec.dsnStatus, '4.7.1');
  assert.equal(rec.queue, 'policy/per-sender');
  assert.equal(rec.rcpt, 'r4@y.com');
  assert.equal(rec.rcptDomain, 'y.com');
});

test('several windows: the minute window refills, the hour window still holds', () => {
  const h = harness(PER_SENDER);
  for (let i = 0; i < 3; i++) assert.equal(h.ask({ sender: 'a@x.com', instance: `m${i}` }), 'DUNNO');
  h.advance(62_001); // past the minute plus one bucket (the window is accurate to 1/30 of its length)
  assert.equal(h.ask({ sender: 'a@x.com', instance: 'n1' }), 'DUNNO');
  assert.equal(h.ask({ sender: 'a@x.com', instance: 'n2' }), 'DUNNO');
  assert.match(h.ask({ sender: 'a@x.com', instance: 'n3' }), /5\/h/);
});

test('the window slides: half a window later, half of the earlier burst still counts', () => {
  const w = new SlidingWindow(60_000, 0);
  w.add(10, 0);
  assert.equal(w.count(0), 10);
  assert.ok(Math.abs(w.count(30_000) - 10) < 1e-9, 'inside the window the burst still counts');
  assert.ok(Math.abs(w.count(61_000) - 10 * (1 - 1000 / 2000)) < 1e-9, 'the oldest bucket is weighted');
  assert.equal(w.count(62_001), 0);
  const fixed = new SlidingWindow(60_000, 0);
  fixed.add(5, 59_000);
  // A fixed minute window would reset at 60 s and admit another 5 immediately; the sliding one does not.
  assert.equal(fixed.count(61_000), 5);
});

test('a per-key override gives a tenant a higher quota (and "unlimited" exempts it)', () => {
  const h = harness(`
<policy-limit tenant>
  key sasl_username
  rate 2/m
  <policy-override BigCo>
    rate 4/m
  </policy-override>
  <policy-override internal>
    rate unlimited
  </policy-override>
</policy-limit>
`);
  const results = (user: string) =>
    Array.from({ length: 6 }, (_, i) => h.ask({ sasl_username: user, instance: `${user}${i}` }) === 'DUNNO');
  assert.deepEqual(results('small'), [true, true, false, false, false, false]);
  assert.deepEqual(results('bigco'), [true, true, true, true, false, false]);
  assert.deepEqual(results('internal'), [true, true, true, true, true, true]);
});

test('combined keys and client networks: sender domain × recipient domain, client /24', () => {
  const h = harness(`
<policy-limit dom-pair>
  key sender_domain, recipient_domain
  rate 1/m
</policy-limit>
<policy-limit net>
  key client_address/24
  rate 3/m
  action REJECT
  text "5.7.1 network {key} over {rate}"
</policy-limit>
`);
  assert.equal(
    h.ask({ sender: 'a@s.com', recipient: 'x@gmail.com', client_address: '10.0.0.1', instance: '1' }),
    'DUNNO',
  );
  assert.match(
    h.ask({ sender: 'b@s.com', recipient: 'y@gmail.com', client_address: '10.0.1.1', instance: '2' }),
    /dom-pair.*s\.com,gmail\.com/,
  );
  assert.equal(
    h.ask({ sender: 'a@s.com', recipient: 'x@yahoo.com', client_address: '10.0.0.2', instance: '3' }),
    'DUNNO',
  );
  assert.equal(
    h.ask({ sender: 'c@t.com', recipient: 'x@yahoo.com', client_address: '10.0.0.3', instance: '4' }),
    'DUNNO',
  );
  assert.equal(
    h.ask({ sender: 'd@u.com', recipient: 'x@yahoo.com', client_address: '10.0.0.200', instance: '5' }),
    'REJECT 5.7.1 network 10.0.0.0/24 over 3/m',
  );
  // The refused request was not counted by the other limit.
  assert.equal(
    h.ask({ sender: 'd@u.com', recipient: 'x@yahoo.com', client_address: '10.9.0.1', instance: '6' }),
    'DUNNO',
  );
});

test('recipients of a transaction that ends before DATA are taken back once the connection shows DATA requests', () => {
  const h = harness(`
<policy-limit rcpts>
  key sender
  rate 3/m
</policy-limit>
`);
  const txn = new Transaction();
  // First message: 2 recipients, reaches END-OF-MESSAGE (so this connection is known to ask at end of data).
  h.ask({ sender: 'a@x.com', instance: 'i1' }, txn);
  h.ask({ sender: 'a@x.com', instance: 'i1' }, txn);
  h.decider.decide(
    rcpt({ protocol_state: 'END-OF-MESSAGE', sender: 'a@x.com', instance: 'i1', recipient_count: '2' }),
    txn,
  );
  // Second transaction: 1 recipient, then RSET/QUIT — the next request has another instance.
  assert.equal(h.ask({ sender: 'a@x.com', instance: 'i2' }, txn), 'DUNNO');
  assert.equal(h.ask({ sender: 'a@x.com', instance: 'i3' }, txn), 'DUNNO', 'i2 was taken back, 3 counted');
  assert.match(h.ask({ sender: 'a@x.com', instance: 'i3' }, txn), /DEFER_IF_PERMIT/);
  assert.equal(h.decider.totals.refunded, 1);
});

test('without evidence of DATA-stage requests nothing is taken back', () => {
  const h = harness(`
<policy-limit rcpts>
  key sender
  rate 2/m
</policy-limit>
`);
  const txn = new Transaction();
  h.ask({ sender: 'a@x.com', instance: 'i1' }, txn);
  h.ask({ sender: 'a@x.com', instance: 'i2' }, txn);
  assert.match(h.ask({ sender: 'a@x.com', instance: 'i3' }, txn), /DEFER_IF_PERMIT/);
});

test('messages count once per message at RCPT; bytes and recipient_count count at END-OF-MESSAGE', () => {
  const h = harness(`
<policy-limit msgs>
  key sender
  count messages
  rate 2/m
</policy-limit>
<policy-limit bytes>
  key sasl_username
  count bytes
  rate 1000/h
</policy-limit>
<policy-limit eom-rcpts>
  key sasl_username
  count recipients
  count-at end-of-message
  rate 5/h
</policy-limit>
`);
  const t = new Transaction();
  for (let i = 0; i < 4; i++) assert.equal(h.ask({ sender: 'a@x.com', instance: 'm1' }, t), 'DUNNO');
  assert.equal(h.ask({ sender: 'a@x.com', instance: 'm2' }, t), 'DUNNO');
  assert.match(h.ask({ sender: 'a@x.com', instance: 'm3' }, t), /msgs/);
  const eom = (size: number, count: number, inst: string) =>
    h.decider.decide(
      rcpt({
        protocol_state: 'END-OF-MESSAGE',
        sasl_username: 'u',
        instance: inst,
        size: String(size),
        recipient_count: String(count),
      }),
      new Transaction(),
    );
  assert.equal(eom(600, 2, 'e1'), 'DUNNO');
  assert.match(eom(600, 1, 'e2'), /bytes/);
  assert.equal(eom(300, 3, 'e3'), 'DUNNO');
  assert.match(eom(10, 1, 'e4'), /eom-rcpts/);
});

test('store unavailable: a fail-closed limit defers with 4.3.0, a fail-open limit decides from memory', () => {
  const h = harness(
    `
<policy-limit closed>
  key sender
  rate 100/m
  store-failure closed
</policy-limit>
<policy-limit open>
  key sasl_username
  rate 1/m
</policy-limit>
`,
    { health: { counters: false } },
  );
  assert.match(h.ask({ sender: 'a@x.com', instance: '1' }), /^DEFER_IF_PERMIT 4\.3\.0 .*closed/);
  assert.equal(h.ask({ sasl_username: 'u', instance: '2' }), 'DUNNO');
  assert.match(h.ask({ sasl_username: 'u', instance: '3' }), /4\.7\.1/);
  h.health.counters = true;
  assert.equal(h.ask({ sender: 'a@x.com', instance: '4' }), 'DUNNO');
});

test('a suppressed recipient is rejected 5.1.1 at RCPT (real suppression list), before any limit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'freight-policy-sup-'));
  const store = AcctStore.open(join(dir, 'acct.db'));
  try {
    const list = SuppressionList.open(store);
    list.add({ address: 'Gone@Example.com', reason: 'bad-mailbox', source: 'bounce' });
    list.add({ domain: 'dead.example', reason: 'bad-domain', source: 'manual' });
    const h = harness(PER_SENDER, { suppression: { check: (a) => list.check(a) !== undefined } });
    assert.equal(
      h.ask({ sender: 'a@x.com', recipient: 'gone@example.com' }),
      'REJECT 5.1.1 <gone@example.com>: recipient address suppressed',
    );
    assert.match(h.ask({ sender: 'a@x.com', recipient: 'x@mx.dead.example' }), /^REJECT 5\.1\.1/);
    assert.equal(h.ask({ sender: 'a@x.com', recipient: 'ok@example.com' }), 'DUNNO');
    assert.equal(h.records[0]!.queue, 'policy/suppression');
    assert.equal(h.records[0]!.dsnStatus, '5.1.1');
    assert.equal(h.records[0]!.dsnAction, 'failed');
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('suppression text and action are configurable; a closed suppression store defers', () => {
  const h = harness(
    `
<policy>
  suppression-text "5.7.1 {recipient} unsubscribed"
  suppression-store-failure closed
</policy>
`,
    { suppression: { check: () => true } },
  );
  assert.equal(h.ask({ recipient: 'x@y.z' }), 'REJECT 5.7.1 x@y.z unsubscribed');
  h.health.suppression = false;
  assert.match(h.ask({ recipient: 'x@y.z' }), /^DEFER_IF_PERMIT 4\.3\.0/);
});

test('invalid policy blocks are refused with file:line reasons', () => {
  const cases: Array<[string, RegExp]> = [
    ['<policy-limit a>\n  rate 1/m\n</policy-limit>\n', /needs a key/],
    ['<policy-limit a>\n  key color\n  rate 1/m\n</policy-limit>\n', /:2: unknown key 'color'/],
    ['<policy-limit a>\n  key sender\n</policy-limit>\n', /needs at least one rate/],
    [
      '<policy-limit a>\n  key sender\n  rate 1/m\n  count bytes\n  count-at rcpt\n</policy-limit>\n',
      /end-of-message/,
    ],
    ['<policy-limit a>\n  key sender\n  rate 1/m\n  action ACCEPT\n</policy-limit>\n', /:4: action must be/],
    ['<policy-limit a>\n  key sender/24\n  rate 1/m\n</policy-limit>\n', /only client_address/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => settingsFrom(text),
      (err: unknown) => isFreightError(err, 'POLICY_CONFIG_INVALID') && re.test(err.message),
      text,
    );
  }
});
