/**
 * The spool fsyncs on the event loop while the disk is fast and in the thread pool while its average
 * fsync latency is high, coming back inline once the average drops. Latency is driven by a clock that
 * advances a set amount per fsync, so the switch points are exact; the fsyncs themselves are real, on a
 * real file, and a bad descriptor is an error in either mode.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FsyncRunner } from '../sidecar/engine/spool/fsync.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-fsync-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A clock whose reading advances by `step.ms` on every second call: each fsync appears to take step.ms. */
function steppedClock(step: { ms: number }): () => number {
  let t = 0;
  let calls = 0;
  return () => {
    if (calls++ % 2 === 1) t += step.ms;
    return t;
  };
}

describe('spool fsync runner', () => {
  it('goes to the thread pool when fsyncs are slow on average, and back when they are fast', async () => {
    const step = { ms: 10 };
    const runner = new FsyncRunner({ slowMs: 5, now: steppedClock(step) });
    const fd = fs.openSync(path.join(tmp, 'a.dat'), 'w');
    try {
      fs.writeSync(fd, 'x');
      await runner.sync(fd, true);
      assert.equal(runner.inline, true, 'one slow fsync is an outlier, not a slow disk');
      let n = 1;
      while (runner.inline && n < 50) {
        await runner.sync(fd, n % 2 === 0);
        n++;
      }
      assert.equal(runner.inline, false, 'a run of 10 ms fsyncs moves them to the thread pool');
      assert.ok(n >= 5, `switched after ${n} fsyncs`);
      step.ms = 1;
      let m = 0;
      while (!runner.inline && m < 100) {
        fs.writeSync(fd, 'y');
        await runner.sync(fd, m % 2 === 0);
        m++;
      }
      assert.equal(runner.inline, true, 'fast pooled fsyncs bring it back inline');
      assert.equal(fs.readFileSync(path.join(tmp, 'a.dat'), 'utf8'), `x${'y'.repeat(m)}`);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('rejects a bad descriptor in either mode instead of throwing out of the caller', async () => {
    const fast = new FsyncRunner({ slowMs: 5, now: steppedClock({ ms: 0 }) });
    await assert.rejects(fast.sync(1_000_000, false), { code: 'EBADF' });
    const slow = new FsyncRunner({ slowMs: 0.5, now: steppedClock({ ms: 100 }) });
    await assert.rejects(slow.sync(1_000_000, true), { code: 'EBADF' });
    assert.equal(slow.inline, false);
    await assert.rejects(slow.sync(1_000_000, true), { code: 'EBADF' });
  });
});
