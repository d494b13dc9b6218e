/**
 * A SIGKILL just after the engine answered 250 at intake, and another just after a remote MTA accepted
 * a delivery, each land while those events' accounting rows are still on their way to the store (it
 * commits in batches every 100 ms). The spool journal has recorded both events, so after the restarts
 * the store must hold exactly one `r` row and one `d` row per recipient: replayed from the journal,
 * never doubled.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { greet, SmtpClient, sendMessage, taggedMessage } from '../harness/smtp-load.js';
import {
  acctCounts,
  assertAcctMatchesSink,
  DOMAIN,
  type EngineWorld,
  engineWorld,
} from './engine-acct-world.js';

/** The sink holds its 250 this long, so the delivery's row is written well after the intake rows' batch. */
const DATA_DELAY_MS = 300;
/** Kill this long after an event: its journal record is written (same loop turn), its batch is not. */
const KILL_AFTER_MS = 20;

describe('engine accounting across SIGKILL', () => {
  let world: EngineWorld;

  before(async () => {
    world = await engineWorld({ maxSmtpOut: 1, script: { dataDelayMs: DATA_DELAY_MS } });
  });
  after(() => world.close());

  it('keeps the r and d rows of events the spool recorded just before each kill', {
    timeout: 60_000,
  }, async () => {
    const rcpts = [`a@${DOMAIN}`, `b@${DOMAIN}`];
    let engine = await world.start();
    const c = await SmtpClient.open('127.0.0.1', world.port);
    await greet(c, 'lmtp');
    const r = await sendMessage(c, taggedMessage(1, 'sender@app.test', rcpts, 500), 'lmtp');
    assert.equal(r.outcome, 'accepted', r.reply);
    await new Promise((res) => setTimeout(res, KILL_AFTER_MS));
    await engine.kill('SIGKILL');
    c.destroy();
    assert.equal(world.sink.arrivals.length, 0, 'killed before the sink answered');

    engine = await world.start();
    await world.sink.waitForArrivals(1, 20_000);
    await new Promise((res) => setTimeout(res, KILL_AFTER_MS));
    await engine.kill('SIGKILL');

    engine = await world.start();
    await world.drained();
    await engine.kill('SIGTERM');
    assert.equal(acctCounts(world.acctDb, 'r').size, rcpts.length, 'one r row per recipient');
    const duplicates = assertAcctMatchesSink(world.acctDb, world.sink);
    assert.ok(duplicates <= rcpts.length, `at most the in-flight delivery repeats (${duplicates})`);
  });
});
