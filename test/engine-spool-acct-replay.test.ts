/**
 * The spool journal as the source of the engine's accounting rows: at recovery, exactly the records
 * numbered above the store's cursor get their rows rebuilt, identical to the live ones (same dedupe
 * keys); and journal compaction, which drops records, waits until the store has caught up.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { type AcctEvent, eventRow, receivedRows } from '../sidecar/engine/spool/acct-rows.js';
import type { MessageDraft, SpoolEntry } from '../sidecar/engine/spool/entry.js';
import { Spool } from '../sidecar/engine/spool/spool.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-spool-acct-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const draft = (i: number): MessageDraft => ({
  sender: 'bulk@app.test',
  envId: null,
  ret: null,
  jobId: 'job-1',
  vmtaRequest: null,
  postfixQueueId: `PF${i}`,
  messageId: `<m${i}@app.test>`,
  sourceIp: '127.0.0.1',
  source: { srcType: 'lmtp', helo: 'postfix.test' },
  recipients: [0, 1].map((k) => ({ rcpt: `u${i}-${k}@isp.test`, orcpt: null, notify: null })),
});
const body = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`);

const event = (at: number): AcctEvent => ({
  type: 'd',
  at,
  status: '2.0.0',
  bounceCat: null,
  place: {
    queue: 'isp.test/default',
    vmta: 'default',
    vmtaPool: null,
    sourceIp: '127.0.0.1',
    destinationIp: '127.0.0.9',
    mta: 'mx.isp.test (127.0.0.9)',
    esmtp: 'ESMTP',
  },
});

function deliver(spool: Spool, m: SpoolEntry, i: number, at: number) {
  const ev = event(at);
  spool.update([
    {
      messageId: m.id,
      rcptIndex: i,
      state: 'delivered',
      attempts: 1,
      nextAttemptAt: 0,
      lastDiag: 'smtp;250 ok',
      acct: ev,
    },
  ]);
  return eventRow(m, i, 1, 'smtp;250 ok', ev);
}

describe('spool journal as the accounting source', () => {
  it('rebuilds the rows of exactly the records above the cursor, identical to the live rows', async () => {
    const dir = path.join(tmp, 'replay');
    const spool = await Spool.open({ dir, acctCursor: null });
    const m0 = await spool.accept(draft(0), body(0));
    deliver(spool, m0, 0, 1000);
    const cursor = spool.acctPosition();
    const m1 = await spool.accept(draft(1), body(1));
    const expected = [
      ...receivedRows(m1, m1.intakeSource),
      deliver(spool, m0, 1, 2000),
      deliver(spool, m1, 0, 3000),
    ];
    await spool.close();

    const again = await Spool.open({ dir, acctCursor: cursor });
    const rows = again.takeMissingAcctRows();
    assert.deepEqual(
      rows.map((r) => r.dedupeKey),
      expected.map((r) => r.dedupeKey),
    );
    assert.deepEqual(rows, expected);
    assert.equal(rows[0]!.srcMta, 'postfix.test (127.0.0.1)');
    assert.equal(rows[0]!.srcType, 'lmtp');
    assert.ok(again.acctPosition() >= cursor + 3, 'numbering goes on after the replayed records');
    again.takeRecovered(() => {});
    await again.close();
  });

  it('compacts the journal only once the accounting store has caught up', async () => {
    const dir = path.join(tmp, 'gate');
    const spool = await Spool.open({ dir, acctCursor: null, compactMinBytes: 1 });
    let caughtUp = false;
    let asked = 0;
    spool.setCompactionGate(() => {
      asked++;
      return caughtUp;
    });
    const snapshots = () => fs.readdirSync(path.join(dir, 'journal')).filter((n) => n.startsWith('snap-'));
    for (let i = 0; i < 3; i++) spool.remove(await spool.accept(draft(i), body(i)));
    await spool.accept(draft(3), body(3));
    assert.ok(asked > 0, 'compaction was due');
    assert.deepEqual(snapshots(), [], 'no compaction while the store is behind');
    caughtUp = true;
    await spool.accept(draft(4), body(4));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(snapshots().length, 1);
    await spool.close();
  });
});
