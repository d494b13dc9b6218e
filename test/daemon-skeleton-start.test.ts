/**
 * The daemon skeleton's start hook (the engine's boot): it runs only once the pid file is held, so a
 * second copy on the same run dir refuses before it touches any state; a start that fails releases
 * the pid file instead of leaving it behind.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pidFilePath, runDaemon } from '../sidecar/common/daemon.js';
import { isFreightError } from '../sidecar/common/errors.js';
import { createLogger } from '../sidecar/common/log.js';

const dir = mkdtempSync(join(tmpdir(), 'freight-daemon-start-'));
const log = createLogger('test/daemon');
after(() => rmSync(dir, { recursive: true, force: true }));

test('a start hook that fails releases the pid file and rejects with its error', async () => {
  const runDir = join(dir, 'failing');
  let heldDuringStart = false;
  const boom = new Error('spool cannot be opened');
  const run = runDaemon('engine', runDir, log, {
    start: async () => {
      heldDuringStart = readFileSync(pidFilePath(runDir, 'engine'), 'utf8').trim() === String(process.pid);
      throw boom;
    },
    reload: () => {},
    stop: async () => {},
  });
  await assert.rejects(run, (err: unknown) => err === boom);
  assert.ok(heldDuringStart, 'the pid file is ours while start runs');
  assert.equal(existsSync(pidFilePath(runDir, 'engine')), false, 'pid file released');
});

test('a second copy refuses before its start hook runs; the first stops on SIGTERM', async () => {
  const runDir = join(dir, 'twice');
  let started = 0;
  let stopped = 0;
  const hooks = {
    start: async () => {
      started++;
    },
    reload: () => {},
    stop: async () => {
      stopped++;
    },
  };
  const first = runDaemon('engine', runDir, log, hooks);
  // A pid file naming another live process (our parent) stands for a running copy.
  await new Promise((r) => setImmediate(r));
  assert.equal(started, 1);
  writeFileSync(pidFilePath(runDir, 'engine'), `${process.ppid}\n`);
  assert.throws(
    () => runDaemon('engine', runDir, log, hooks),
    (err: unknown) => isFreightError(err) && err.code === 'DAEMON_RUNNING',
  );
  assert.equal(started, 1, 'the refused copy never started');
  writeFileSync(pidFilePath(runDir, 'engine'), `${process.pid}\n`);
  process.emit('SIGTERM');
  await first;
  assert.equal(stopped, 1);
  assert.equal(existsSync(pidFilePath(runDir, 'engine')), false, 'pid file released on stop');
});
