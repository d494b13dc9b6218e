/**
 * Group commit gathering: a commit round waits (up to spool-commit-delay) for messages from the other
 * open intake sessions, ends early once every session has one pending, and never waits when only one
 * session is open. The delay here is long (4 s) so that "waited" and "did not wait" cannot be confused
 * on a slow machine.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { MessageDraft } from '../sidecar/engine/spool/entry.js';
import { Spool } from '../sidecar/engine/spool/spool.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'freight-gather-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const DELAY = 4000;
const draft = (i: number): MessageDraft => ({
  sender: 'bulk@app.test',
  envId: null,
  ret: null,
  jobId: null,
  vmtaRequest: null,
  postfixQueueId: null,
  messageId: null,
  sourceIp: '127.0.0.1',
  recipients: [{ rcpt: `u${i}@isp.test`, orcpt: null, notify: null }],
});
const body = Buffer.from('Subject: x\r\n\r\nx\r\n');

/** Whether `p` has settled `ms` from now. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setTimeout(r, ms));
  return done;
}

describe('spool group commit gathering', () => {
  it('does not wait with a single open session', async () => {
    const spool = await Spool.open({ dir: path.join(tmp, 'a'), commitDelayMs: DELAY });
    spool.setWriters(() => 1);
    assert.equal(await settledWithin(spool.accept(draft(1), body), DELAY / 2), true);
    await spool.close();
  });

  it('waits for the other sessions, and commits as soon as each has a message pending', async () => {
    const spool = await Spool.open({ dir: path.join(tmp, 'b'), commitDelayMs: DELAY });
    spool.setWriters(() => 3);
    const first = spool.accept(draft(1), body);
    assert.equal(await settledWithin(first, DELAY / 4), false, 'the first message waits for the round');
    const rest = [spool.accept(draft(2), body), spool.accept(draft(3), body)];
    assert.equal(await settledWithin(Promise.all([first, ...rest]), DELAY / 4), true, 'all three together');
    await spool.close();
  });

  it('commits after the delay when the other sessions send nothing', async () => {
    const spool = await Spool.open({ dir: path.join(tmp, 'c'), commitDelayMs: DELAY });
    spool.setWriters(() => 5);
    const lone = spool.accept(draft(1), body);
    assert.equal(await settledWithin(lone, DELAY / 4), false);
    assert.equal(await settledWithin(lone, DELAY + 1000), true);
    await spool.close();
  });
});
