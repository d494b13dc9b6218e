/**
 * Spool recovery from the files a crash leaves: journal replay (outcomes, removals), compaction while
 * accepting, a torn last journal line, unacknowledged bodies and orphan data segments; data-segment
 * compaction; and a spool left by the older one-file-per-body layout.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { MessageDraft } from '../sidecar/engine/spool/entry.js';
import { Spool } from '../sidecar/engine/spool/spool.js';

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
const segPath = (dir: string, seg: number) =>
  path.join(dir, 'data', `seg-${String(seg).padStart(8, '0')}.dat`);
const delivered = (id: string, rcptIndex = 0) => ({
  messageId: id,
  rcptIndex,
  state: 'delivered' as const,
  attempts: 1,
  nextAttemptAt: 0,
  lastDiag: null,
});

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
    assert.equal((await again.readBody(m1)).toString(), body(1).toString());
    await assert.rejects(again.readBody(msgs[2]!), { code: 'SPOOL_READ' });
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

  it('skips a torn journal tail, drops a message whose body is cut short and deletes orphan segments', async () => {
    const dir = path.join(tmp, 'c');
    const spool = await Spool.open({ dir });
    const kept = await spool.accept(draft(1), body(1));
    const lost = await spool.accept(draft(2), body(2));
    await spool.close();
    // The data segment ends inside `lost`'s body (truncated on disk): that message cannot be delivered.
    fs.truncateSync(segPath(dir, lost.seg), lost.off + 3);
    const seg = fs
      .readdirSync(path.join(dir, 'journal'))
      .filter((f) => f.startsWith('seg-'))
      .sort()
      .at(-1)!;
    fs.appendFileSync(path.join(dir, 'journal', seg), '{"t":"U","id":"x","i":0,"s":"deliv');
    const orphan = segPath(dir, 99);
    fs.writeFileSync(orphan, 'x');
    const again = await Spool.open({ dir });
    const rec = again.takeRecovered(noDsn);
    assert.deepEqual(
      rec.map((m) => m.id),
      [kept.id],
    );
    assert.equal(fs.existsSync(orphan), false);
    assert.equal((await again.readBody(kept)).toString(), body(1).toString());
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

  it('copies stragglers out of mostly dead data segments, deletes those segments and recovers the copies', async () => {
    const dir = path.join(tmp, 'd');
    // Tiny segments: every few messages start a new one.
    const spool = await Spool.open({ dir, segmentBytes: 100, bodyCacheBytes: 0 });
    const msgs = [];
    for (let i = 0; i < 40; i++) msgs.push(await spool.accept(draft(i, 1), body(i)));
    const segsBefore = new Set(msgs.map((m) => m.seg));
    assert.ok(segsBefore.size >= 6, `${segsBefore.size} segments`);
    // All but every tenth message delivered: each old segment keeps one straggler at most.
    for (const [i, m] of msgs.entries()) {
      if (i % 10 === 0) continue;
      spool.update([delivered(m.id)]);
      spool.remove(m);
    }
    await new Promise((r) => setTimeout(r, 50));
    const stragglers = msgs.filter((_, i) => i % 10 === 0);
    const moved = await spool.compactSegments(0);
    assert.equal(moved, stragglers.filter((m) => m.seg !== Math.max(...segsBefore)).length);
    for (const m of stragglers)
      assert.equal((await spool.readBody(m)).toString(), body(msgs.indexOf(m)).toString());
    await new Promise((r) => setTimeout(r, 50));
    const left = fs.readdirSync(path.join(dir, 'data'));
    // Every old segment is gone, including those that held a straggler; only the current one remains.
    const current = Math.max(...segsBefore);
    for (const seg of segsBefore) {
      if (seg === current) continue;
      assert.ok(!left.includes(path.basename(segPath(dir, seg))), `segment ${seg} deleted: ${left}`);
    }
    // A SIGKILL now (no close): recovery finds the stragglers at their new places.
    const again = await Spool.open({ dir });
    const rec = again.takeRecovered(noDsn);
    assert.deepEqual(rec.map((m) => m.id).sort(), stragglers.map((m) => m.id).sort());
    for (const m of rec)
      assert.equal(
        (await again.readBody(m)).toString(),
        body(msgs.findIndex((x) => x.id === m.id)).toString(),
      );
    await again.close();
    await spool.close();
  });

  it('recovers and delivers from a spool written with one file per body', async () => {
    const dir = path.join(tmp, 'e');
    fs.mkdirSync(path.join(dir, 'journal'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'msg', 'ab'), { recursive: true });
    const old = Buffer.from('Subject: old\r\n\r\nfrom before the upgrade\r\n');
    fs.writeFileSync(path.join(dir, 'msg', 'ab', 'ab0001.eml'), old);
    fs.writeFileSync(path.join(dir, 'msg', 'ab', 'abstray.eml'), 'x');
    const add = {
      t: 'A',
      id: 'ab0001',
      s: 'bulk@app.test',
      e: null,
      r: null,
      at: Date.now(),
      z: old.length,
      j: null,
      v: null,
      p: 'PFOLD',
      m: null,
      ip: '127.0.0.1',
      rc: [['old@isp.test', null, null, 'queued', 0, 0, null, 0]],
    };
    fs.writeFileSync(path.join(dir, 'journal', 'seg-00000001.log'), `${JSON.stringify(add)}\n`);
    const spool = await Spool.open({ dir });
    const [m] = spool.takeRecovered(noDsn);
    assert.equal(m?.id, 'ab0001');
    assert.equal((await spool.readBody(m!)).toString(), old.toString());
    assert.equal(fs.existsSync(path.join(dir, 'msg', 'ab', 'abstray.eml')), false, 'orphan file deleted');
    spool.update([delivered(m!.id)]);
    spool.remove(m!);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fs.existsSync(path.join(dir, 'msg', 'ab', 'ab0001.eml')), false);
    await spool.close();
  });
});
