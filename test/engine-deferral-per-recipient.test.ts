/**
 * Recipients of one transaction that fail differently keep their own outcome: each deferred recipient
 * gets its own reply, enhanced status, bounce category, accounting row and retry time (from its own
 * attempt count), and a 421 in the middle of the transaction (at a later RCPT, or at the end of DATA)
 * goes to the recipients that had no final answer yet while the others keep theirs. Real sinks, real
 * SQLite accounting, the real classifier.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../harness/index.js';
import type { AcctRecord } from '../sidecar/acct/record.js';
import { BounceClassifier } from '../sidecar/classify/classifier.js';
import { startWorld, type World } from './engine-delivery-harness.js';

const classifier = BounceClassifier.load();
const category = (reply: string) => classifier.classify(reply).category;

describe('engine delivery: per-recipient deferral diagnostics', () => {
  let w: World;

  before(async () => {
    w = await startWorld(
      ({ ip }) => `
<virtual-mta mta1>
  smtp-source-host ${ip(10)} mta1.engine.test
</virtual-mta>
<domain *>
  virtual-mta mta1
  retry-after 300ms,1200ms
  bounce-after 1h
</domain>
`,
    );
    await w.startSink(31, {
      rcptTo: [
        { match: /^b@/, code: 450, message: '4.2.1 Mailbox busy, try later' },
        { match: /^c@/, code: 452, message: '4.2.2 Mailbox full' },
        { match: /^d@/, code: 550, message: '5.1.1 No such user' },
      ],
    });
    await w.startSink(32, {
      rcptTo: [
        { match: /^f@/, code: 450, message: '4.2.1 Mailbox busy, try later' },
        { match: /^g@/, code: 421, message: '4.7.0 Too many connections, closing' },
      ],
    });
    await w.startSink(33, {
      rcptTo: [
        { match: /^j@/, code: 550, message: '5.1.1 No such user' },
        { match: /^l@/, code: 452, message: '4.2.2 Mailbox full' },
      ],
      data: [{ match: /./, code: 421, message: '4.3.2 System shutting down' }],
    });
    for (const [domain, n] of [
      ['mixed.test', 31],
      ['rcpt421.test', 32],
      ['data421.test', 33],
    ] as const) {
      w.mxAt(domain, n);
    }
  });

  after(async () => {
    await w.close();
  });

  /** The first accounting row of each recipient of message `id`. */
  function firstRows(id: string): Map<string, AcctRecord> {
    const out = new Map<string, AcctRecord>();
    for (const r of w.rows('messageId = ?', id)) if (r.rcpt && !out.has(r.rcpt)) out.set(r.rcpt, r);
    return out;
  }

  function assertRow(row: AcctRecord | undefined, type: string, reply: string, status: string): void {
    assert.ok(row, `a row for ${reply}`);
    assert.deepEqual(
      [row.type, row.dsnStatus, row.dsnDiag, row.bounceCat],
      [type, status, `smtp;${reply}`, type === 'd' ? null : category(reply)],
      `row of ${row.rcpt}`,
    );
  }

  /** How often the sink accepted a message for `rcpt`. */
  const arrivalsFor = (n: number, rcpt: string) =>
    w.sinks.get(w.ip(n))!.arrivals.filter((a) => a.rcptTo.includes(rcpt)).length;

  it('gives each recipient of a mixed transaction its own reply, category and retry time', async () => {
    const msg = w.message('mixed', ['a@mixed.test', 'b@mixed.test', 'c@mixed.test', 'd@mixed.test']);
    // c was deferred once before: its next retry is the second interval, b's the first.
    msg.recipients[2]!.attempts = 1;
    w.scheduler.submit(msg);
    await until(() => w.rows("messageId = 'mixed'").length === 4, 5000, 'first attempt');
    w.sinks.get(w.ip(31))!.setScript({});
    const rows = firstRows('mixed');
    assert.equal(rows.get('a@mixed.test')?.type, 'd');
    assertRow(rows.get('b@mixed.test'), 't', '450 4.2.1 Mailbox busy, try later', '4.2.1');
    assertRow(rows.get('c@mixed.test'), 't', '452 4.2.2 Mailbox full', '4.2.2');
    assertRow(rows.get('d@mixed.test'), 'b', '550 5.1.1 No such user', '5.1.1');
    assert.notEqual(rows.get('b@mixed.test')?.bounceCat, rows.get('c@mixed.test')?.bounceCat);
    assert.deepEqual(
      ['b@mixed.test', 'c@mixed.test'].map((r) => rows.get(r)?.attempt),
      [1, 2],
    );

    const deferral = (rcptIndex: number) =>
      w.spool.updates.find((u) => u.messageId === 'mixed' && u.rcptIndex === rcptIndex)!;
    const tB = rows.get('b@mixed.test')!.timeLogged;
    const dueB = deferral(1).nextAttemptAt - tB;
    assert.ok(dueB >= 300 && dueB < 600, `b due ${dueB} ms after its deferral`);
    assert.equal(deferral(2).nextAttemptAt - deferral(1).nextAttemptAt, 900, 'c due 1200 ms, b 300 ms');

    await until(() => w.spool.removed.has('mixed'), 5000, 'both deferred recipients delivered');
    const d = (rcpt: string) => w.rows("messageId = 'mixed' AND type = 'd' AND rcpt = ?", rcpt);
    const dB = d('b@mixed.test')[0]!.timeLogged;
    const dC = d('c@mixed.test')[0]!.timeLogged;
    assert.ok(dB - tB >= 300 && dB - tB < 1200, `b retried after ${dB - tB} ms`);
    assert.ok(dC - tB >= 1200, `c retried after ${dC - tB} ms`);
    assert.equal(d('a@mixed.test').length, 1);
    assert.equal(arrivalsFor(31, 'a@mixed.test'), 1, 'the accepted recipient is delivered once');
  });

  it('gives a 421 at a later RCPT to the recipients that had no final answer yet', async () => {
    const msg = w.message('r421', ['e@rcpt421.test', 'f@rcpt421.test', 'g@rcpt421.test', 'h@rcpt421.test']);
    w.scheduler.submit(msg);
    await until(() => w.rows("messageId = 'r421'").length === 4, 5000, 'first attempt');
    w.sinks.get(w.ip(32))!.setScript({});
    const rows = firstRows('r421');
    const closing = '421 4.7.0 Too many connections, closing';
    assertRow(rows.get('e@rcpt421.test'), 't', closing, '4.7.0');
    assertRow(rows.get('f@rcpt421.test'), 't', '450 4.2.1 Mailbox busy, try later', '4.2.1');
    assertRow(rows.get('g@rcpt421.test'), 't', closing, '4.7.0');
    assertRow(rows.get('h@rcpt421.test'), 't', closing, '4.7.0');
    assert.equal(arrivalsFor(32, 'e@rcpt421.test'), 0, 'no DATA after the 421');

    await until(() => w.spool.removed.has('r421'), 5000, 'retry delivers every recipient');
    for (const rcpt of msg.recipients.map((r) => r.rcpt)) {
      assert.equal(w.rows("messageId = 'r421' AND type = 'd' AND rcpt = ?", rcpt).length, 1, rcpt);
      assert.equal(arrivalsFor(32, rcpt), 1, `${rcpt} delivered once`);
    }
  });

  it('gives a 421 at the end of DATA to the accepted recipients; rejected ones keep their replies', async () => {
    const rcpts = ['i@data421.test', 'l@data421.test', 'j@data421.test', 'k@data421.test'];
    w.scheduler.submit(w.message('d421', rcpts));
    await until(() => w.rows("messageId = 'd421'").length === 4, 5000, 'first attempt');
    w.sinks.get(w.ip(33))!.setScript({});
    const rows = firstRows('d421');
    const closing = '421 4.3.2 System shutting down';
    assertRow(rows.get('i@data421.test'), 't', closing, '4.3.2');
    assertRow(rows.get('l@data421.test'), 't', '452 4.2.2 Mailbox full', '4.2.2');
    assertRow(rows.get('j@data421.test'), 'b', '550 5.1.1 No such user', '5.1.1');
    assertRow(rows.get('k@data421.test'), 't', closing, '4.3.2');
    await until(() => w.spool.removed.has('d421'), 5000, 'retry delivers i, l and k');
    for (const rcpt of ['i@data421.test', 'l@data421.test', 'k@data421.test'])
      assert.equal(arrivalsFor(33, rcpt), 1, `${rcpt} delivered once`);
    assert.equal(w.rows("messageId = 'd421' AND rcpt = 'j@data421.test'").length, 1, 'j is not retried');
  });
});
