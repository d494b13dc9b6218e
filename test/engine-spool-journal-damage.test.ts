/**
 * The spool journal against damaged files and power loss: a torn last line is cut off and recovery goes
 * on; a corrupt line in the middle of a segment is skipped with its file and line logged, every message
 * whose records are readable is recovered (and delivered), and the segment ends up in journal/corrupt/
 * once a snapshot holds its state; a new segment's directory entry is fsync'd before records in it count
 * as durable.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it, mock } from 'node:test';
import { until } from '../harness/index.js';
import type { Logger } from '../sidecar/common/log.js';
import type { MessageDraft, SpoolEntry } from '../sidecar/engine/spool/entry.js';
import { spoolFsync } from '../sidecar/engine/spool/fsync.js';
import { SpoolJournal } from '../sidecar/engine/spool/journal.js';
import { Spool } from '../sidecar/engine/spool/spool.js';
import { startWorld } from './engine-delivery-harness.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-journal-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const draft = (i: number): MessageDraft => ({
  sender: 'bulk@app.test',
  envId: null,
  ret: null,
  jobId: null,
  vmtaRequest: null,
  postfixQueueId: `PF${i}`,
  messageId: `<m${i}@app.test>`,
  sourceIp: '127.0.0.1',
  recipients: [0, 1].map((k) => ({ rcpt: `u${i}-${k}@isp.test`, orcpt: null, notify: null })),
});
const body = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`);
const noDsn = () => assert.fail('no DSN expected');

/** A logger that keeps warnings and errors for the test to read. */
function recordingLog(): Logger & { warnings: Array<[string, Record<string, unknown>]>; errors: string[] } {
  const warnings: Array<[string, Record<string, unknown>]> = [];
  const errors: string[] = [];
  const log = {
    warnings,
    errors,
    debug: () => undefined,
    info: () => undefined,
    warn: (m: string, f?: Record<string, unknown>) => warnings.push([m, f ?? {}]),
    error: (m: string) => errors.push(m),
    child: () => log,
  };
  return log;
}

const journalDir = (dir: string) => path.join(dir, 'journal');
const segments = (dir: string) =>
  fs
    .readdirSync(journalDir(dir))
    .filter((f) => /^seg-\d{8}\.log$/.test(f))
    .sort();
const ids = (entries: SpoolEntry[]) => entries.map((m) => m.id).sort();

describe('spool journal damage and durability', () => {
  it('cuts a torn last line off its segment and recovers the records before it', async () => {
    const dir = path.join(tmp, 'torn');
    const spool = await Spool.open({ dir });
    const kept = await spool.accept(draft(1), body(1));
    await spool.close();
    const seg = path.join(journalDir(dir), segments(dir).at(-1)!);
    const whole = fs.readFileSync(seg);
    fs.appendFileSync(seg, '{"t":"U","id":"x","i":0,"s":"deliv');
    const log = recordingLog();
    const again = await Spool.open({ dir, log });
    assert.deepEqual(ids(again.takeRecovered(noDsn)), [kept.id]);
    assert.deepEqual(fs.readFileSync(seg), whole, 'the torn bytes are gone, the whole records stay');
    const torn = log.warnings.find(([, f]) => f.file === seg);
    assert.equal(torn?.[1].line, 2);
    const more = await again.accept(draft(2), body(2));
    await again.close();
    const third = await Spool.open({ dir });
    assert.deepEqual(ids(third.takeRecovered(noDsn)), [kept.id, more.id].sort());
    await third.close();
  });

  it('moves a segment with a corrupt middle line aside and delivers every message it can read', async () => {
    const dir = path.join(tmp, 'corrupt');
    const spool = await Spool.open({ dir });
    const msgs: SpoolEntry[] = [];
    for (let i = 0; i < 4; i++) msgs.push(await spool.accept(draft(i), body(i)));
    const [m0, m1, m2, m3] = msgs as [SpoolEntry, SpoolEntry, SpoolEntry, SpoolEntry];
    spool.update([
      { messageId: m1.id, rcptIndex: 0, state: 'delivered', attempts: 1, nextAttemptAt: 0, lastDiag: null },
    ]);
    await spool.close();
    const name = segments(dir).at(-1)!;
    const seg = path.join(journalDir(dir), name);
    const lines = fs.readFileSync(seg, 'utf8').split('\n');
    const bad = lines.findIndex((l) => l.includes(`"id":"${m2.id}"`));
    // A damaged block in the middle: m2's record is unreadable, the records after it are not.
    lines[bad] = '\u0000'.repeat(lines[bad]!.length);
    fs.writeFileSync(seg, lines.join('\n'));

    const log = recordingLog();
    const again = await Spool.open({ dir, log });
    assert.deepEqual(ids(again.takeRecovered(noDsn)), ids([m0, m1, m3]));
    assert.ok(
      log.warnings.some(([, f]) => f.file === seg && f.line === bad + 1),
      'the corrupt line is logged with its file and line number',
    );
    // Moved aside by the compaction that puts the state it held into a snapshot, once recovery is done.
    await until(() => fs.existsSync(path.join(journalDir(dir), 'corrupt', name)), 3000, 'journal/corrupt/');
    assert.equal(fs.existsSync(seg), false);
    await again.close();

    // The state the corrupt segment held survives it: a further restart recovers the same, and delivers it.
    const third = await Spool.open({ dir });
    const w = await startWorld(
      ({ ip }) =>
        `<virtual-mta mta1>\n  smtp-source-host ${ip(10)} mta1.engine.test\n</virtual-mta>\n<domain *>\n  virtual-mta mta1\n</domain>\n`,
      { spool: third },
    );
    try {
      const sink = await w.startSink(21);
      w.dns.mx('isp.test', [{ exchange: 'mx.isp.test', priority: 10 }]);
      w.dns.a('mx.isp.test', [w.ip(21)]);
      const recovered = third.takeRecovered(noDsn);
      assert.deepEqual(ids(recovered), ids([m0, m1, m3]));
      for (const m of recovered) w.scheduler.submit(m);
      await until(() => third.messageCount === 0, 10_000, 'every recovered message delivered');
      const delivered = sink.arrivals.flatMap((a) => a.rcptTo).sort();
      assert.deepEqual(delivered, [
        'u0-0@isp.test',
        'u0-1@isp.test',
        'u1-1@isp.test',
        'u3-0@isp.test',
        'u3-1@isp.test',
      ]);
    } finally {
      await w.close();
      await third.close();
    }
  });

  it('fsyncs the journal directory after creating a segment, before its records count as durable', async () => {
    const dir = path.join(tmp, 'dirsync');
    const listed: string[][] = [];
    const real = spoolFsync.syncDir.bind(spoolFsync);
    mock.method(spoolFsync, 'syncDir', async (d: string) => {
      if (d === journalDir(dir)) listed.push(fs.readdirSync(d).sort());
      await real(d);
    });
    try {
      const spool = await Spool.open({ dir });
      assert.ok(
        listed.some((files) => files.includes('seg-00000001.log')),
        `journal directory fsync'd with the new segment in it: ${JSON.stringify(listed)}`,
      );
      await spool.close();

      const j = await SpoolJournal.open(journalDir(dir), recordingLog(), () => undefined);
      const seq = j.roll();
      listed.length = 0;
      j.append(JSON.stringify({ t: 'R', id: 'none' }));
      await j.sync();
      const name = `seg-${String(seq).padStart(8, '0')}.log`;
      assert.ok(
        listed.some((files) => files.includes(name)),
        `a rolled-to segment's directory entry is fsync'd by the sync of its first record: ${JSON.stringify(listed)}`,
      );
      j.close();
    } finally {
      mock.restoreAll();
    }
  });
});
