/**
 * Spool recovery from the files a crash leaves: journal replay (outcomes, removals), compaction while
 * accepting, a torn last journal line, unacknowledged bodies and orphan files.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Spool } from '../sidecar/engine/spool.js';
import type { MessageDraft } from '../sidecar/engine/spool-entry.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-spool-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const draft = (i: number, rcpts = 2): MessageDraft => ({
  sender: 'bulk@app.test',
  envId: null,
  ret: 'HDRS',
  jobId: 'job-1',
  vmtaRequest: null,
  postfixQueueId: `PF${i}`,
  messageId: `<m${i}@app.test>`,
  sourceIp: '127.0.0.1',
  recipients: Array.from({ length: rcpts }, (_, k) => ({
    rcpt: `u${i}-${k}@isp.test`,
    orcpt: null,
    notify: null,
  })),
});
const body = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`);
const noDsn = () => assert.fail('no DSN expected');

describe('spool recovery', () => {
  it('replays outcomes and removals; final messages are not handed back', async () => {
    const dir = path.join(tmp, 'a');
    const spool = await Spool.open({ dir });
    const msgs = await Promise.all([0, 1, 2].map((i) => spool.accept(draft(i), body(i))));
    spool.update([
      {
        messageId: msgs[0]!.id,
        rcptIndex: 0,
        state: 'delivered',
        attempts: 1,
        nextAttemptAt: 0,
        lastDiag: null,
      },
      {
        messageId: msgs[1]!.id,
        rcptIndex: 1,
        state: 'queued',
        attempts: 2,
        nextAttemptAt: 12345,
        lastDiag: '451 later',
      },
      {
        messageId: msgs[2]!.id,
        rcptIndex: 0,
        state: 'delivered',
        attempts: 1,
        nextAttemptAt: 0,
        lastDiag: null,
      },
      {
        messageId: msgs[2]!.id,
        rcptIndex: 1,
        state: 'delivered',
        attempts: 1,
        nextAttemptAt: 0,
        lastDiag: null,
      },
    ]);
    spool.remove(msgs[2]!);
    // No close(): the next open sees exactly what a SIGKILL leaves (everything was written to the kernel).
    const again = await Spool.open({ dir });
    const rec = again.takeRecovered(noDsn);
    const byId = new Map(rec.map((m) => [m.id, m]));
    assert.deepEqual([...byId.keys()].sort(), [msgs[0]!.id, msgs[1]!.id].sort());
    assert.equal(byId.get(msgs[0]!.id)!.recipients[0]!.state, 'delivered');
    assert.equal(byId.get(msgs[0]!.id)!.recipients[1]!.state, 'queued');
    const r = byId.get(msgs[1]!.id)!.recipients[1]!;
    assert.deepEqual([r.attempts, r.nextAttemptAt, r.lastDiag], [2, 12345, '451 later']);
    const m1 = byId.get(msgs[1]!.id)!;
    assert.deepEqual(
      [m1.postfixQueueId, m1.jobId, m1.ret, m1.messageId],
      ['PF1', 'job-1', 'HDRS', '<m1@app.test>'],
    );
    assert.equal(fs.readFileSync(m1.bodyPath, 'utf8'), body(1).toString());
    assert.equal(fs.existsSync(msgs[2]!.bodyPath), false);
    await again.close();
    await spool.close();
  });

  it('compacts the journal while accepting and recovers the same state', async () => {
    const dir = path.join(tmp, 'b');
    const spool = await Spool.open({ dir, compactMinBytes: 20_000 });
    const ids: string[] = [];
    for (let round = 0; round < 20; round++) {
      const batch = await Promise.all(
        Array.from({ length: 20 }, (_, k) => spool.accept(draft(round * 20 + k, 1), body(k))),
      );
      for (const m of batch) ids.push(m.id);
      // Three quarters of each round are delivered and removed.
      for (const m of batch.slice(0, 15)) {
        spool.update([
          {
            messageId: m.id,
            rcptIndex: 0,
            state: 'delivered',
            attempts: 1,
            nextAttemptAt: 0,
            lastDiag: null,
          },
        ]);
        spool.remove(m);
      }
    }
    await new Promise((r) => setTimeout(r, 200));
    const files = fs.readdirSync(path.join(dir, 'journal'));
    assert.ok(
      files.some((f) => f.startsWith('snap-')),
      `a snapshot was written: ${files}`,
    );
    const again = await Spool.open({ dir });
    const rec = again.takeRecovered(noDsn);
    assert.equal(rec.length, 100);
    const expected = new Set(ids.filter((_, i) => i % 20 >= 15));
    assert.deepEqual(new Set(rec.map((m) => m.id)), expected);
    await again.close();
    await spool.close();
  });

  it('skips a torn journal tail, drops an unacknowledged body and deletes orphan files', async () => {
    const dir = path.join(tmp, 'c');
    const spool = await Spool.open({ dir });
    const kept = await spool.accept(draft(1), body(1));
    const lost = await spool.accept(draft(2), body(2));
    await spool.close();
    // The body of `lost` is short, as if the power failed before its fsync: it was never acknowledged.
    fs.writeFileSync(lost.bodyPath, 'Sub');
    const seg = fs
      .readdirSync(path.join(dir, 'journal'))
      .filter((f) => f.startsWith('seg-'))
      .sort()
      .at(-1)!;
    fs.appendFileSync(path.join(dir, 'journal', seg), '{"t":"U","id":"x","i":0,"s":"deliv');
    const orphan = path.join(dir, 'msg', '00', '00orphan.eml');
    fs.writeFileSync(orphan, 'x');
    const again = await Spool.open({ dir });
    const rec = again.takeRecovered(noDsn);
    assert.deepEqual(
      rec.map((m) => m.id),
      [kept.id],
    );
    assert.equal(fs.existsSync(orphan), false);
    assert.equal(fs.existsSync(lost.bodyPath), false);
    // New records after a torn tail are readable: accept, reopen, find it.
    const more = await again.accept(draft(3), body(3));
    await again.close();
    const third = await Spool.open({ dir });
    assert.deepEqual(
      third
        .takeRecovered(noDsn)
        .map((m) => m.id)
        .sort(),
      [kept.id, more.id].sort(),
    );
    await third.close();
  });
});
