/**
 * FREIGHT_FAULT at each durability point of the engine, under a retrying LMTP client:
 * - a SIGKILL there (the engine is restarted without the fault): every message the client got 250 for
 *   reaches the sink, duplicates come only from what was in flight (a delivery whose outcome was not
 *   recorded, or a message the client re-sent because it never got its 250), and the accounting holds
 *   exactly one `r` and one `d` row per delivered recipient;
 * - an EIO/ENOSPC there: that message gets a 4xx at intake (the client keeps and re-sends it), nothing
 *   is lost, nothing is accounted twice, and the engine carries on.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { runLoad, taggedMessage } from '../harness/smtp-load.js';
import { assertAcctMatchesSink, DOMAIN, type EngineWorld, engineWorld } from './engine-acct-world.js';

const MESSAGES = 40;
const MAX_SMTP_OUT = 2;
/** The fault fires on this pass through its point, once intake and delivery are both under way. */
const NTH = 6;

function load(world: EngineWorld) {
  return runLoad({
    host: '127.0.0.1',
    port: world.port,
    protocol: 'lmtp',
    connections: 3,
    messages: MESSAGES,
    message: (i) => taggedMessage(i, 'sender@app.test', [`u${i}@${DOMAIN}`, `v${i}@${DOMAIN}`], 800),
    retries: 200,
    reconnectDelayMs: 50,
  });
}

function loadIdsAtSink(world: EngineWorld): Map<string, number> {
  const ids = new Map<string, number>();
  for (const a of world.sink.arrivals) {
    const id = a.headers['x-load-id']?.[0] ?? '?';
    ids.set(id, (ids.get(id) ?? 0) + 1);
  }
  return ids;
}

describe('engine fault injection points', () => {
  let world: EngineWorld | null = null;
  afterEach(async () => {
    await world?.close();
    world = null;
  });

  /** Run the load with the fault armed, restart a killed engine without it, drain, stop, check. */
  async function run(
    fault: string,
    kill: boolean,
  ): Promise<{ load: Awaited<ReturnType<typeof load>>; output: string; killed: boolean }> {
    const w = await engineWorld({ maxSmtpOut: MAX_SMTP_OUT });
    world = w;
    const first = await w.start(fault);
    let engine = first;
    let killed = false;
    const restarted = first.exited.then(async () => {
      killed = first.child.signalCode === 'SIGKILL';
      if (killed) engine = await w.start();
    });
    const result = await load(w);
    assert.equal(result.accepted, MESSAGES, 'every message acknowledged in the end');
    // The fault may fire after the last 250 (a delivery); the engine that drains is the restarted one.
    if (kill) await restarted;
    await w.drained();
    await engine.kill('SIGTERM');
    await restarted;
    const ids = loadIdsAtSink(w);
    for (let i = 0; i < MESSAGES; i++) assert.ok(ids.has(String(i)), `acknowledged message ${i} delivered`);
    const duplicates = assertAcctMatchesSink(w.acctDb, w.sink);
    const sentOnce = [...ids].filter(([id, n]) => n > 1 && result.sends[Number(id)] === 1).length;
    assert.ok(sentOnce <= MAX_SMTP_OUT, `${sentOnce} engine duplicates > ${MAX_SMTP_OUT} in flight`);
    const resent = result.sends.filter((n) => n > 1).length;
    process.stderr.write(
      `# ${fault}: ${duplicates} recipients delivered twice by the engine (${sentOnce} messages the client sent once), ${resent} client re-sends\n`,
    );
    return { load: result, output: first.output(), killed };
  }

  for (const point of ['body-write', 'journal-append', 'intake-250', 'remote-250']) {
    it(`SIGKILL at ${point}: nothing acknowledged is lost, accounting exact`, {
      timeout: 90_000,
    }, async () => {
      const { output, killed } = await run(`${point}:kill:${NTH}`, true);
      assert.match(output, /fault injection armed/);
      assert.ok(killed, 'the first engine died at the fault');
    });
  }

  for (const [point, action, code] of [
    ['body-write', 'eio', 'EIO'],
    ['body-fsync', 'enospc', 'ENOSPC'],
    ['journal-fsync', 'eio', 'EIO'],
  ] as const) {
    it(`${code} at ${point}: 4xx at intake, nothing lost`, { timeout: 90_000 }, async () => {
      const { load: result, output, killed } = await run(`${point}:${action}:${NTH}`, false);
      assert.ok(!killed, 'the engine carried on');
      assert.match(output, new RegExp(`message not spooled; client keeps it.*${code}`));
      assert.ok(
        result.sends.some((n) => n > 1),
        'the refused message was sent again',
      );
    });
  }
});
