/**
 * The engine SIGKILLed three times while it is delivering: each kill is triggered by progress at the
 * sink (after a share of the messages arrived), lands while outbound transactions are open and mail is
 * still queued, and the engine is restarted at once. Afterwards every message the client got 250 for
 * has reached the sink; duplicates are bounded by what can be in flight at a kill (open outbound
 * transactions, plus messages the client itself re-sent because its connection died after DATA); and
 * the accounting store holds exactly one `r` and one `d` row per delivered recipient.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { EngineProc } from '../harness/engine-proc.js';
import { runLoad, taggedMessage } from '../harness/smtp-load.js';
import { assertAcctMatchesSink, DOMAIN, type EngineWorld, engineWorld } from './engine-acct-world.js';

const MAX_SMTP_OUT = 4;
const MESSAGES = 600;
/** Kill when this share of the messages has arrived at the sink. */
const KILL_AT = [0.15, 0.4, 0.65];
/** The sink holds each 250 this long, so a kill finds transactions open. */
const DATA_DELAY_MS = 20;

describe('engine crash safety', () => {
  let world: EngineWorld | null = null;
  afterEach(async () => {
    await world?.close();
    world = null;
  });

  it('three SIGKILLs mid-delivery lose no acknowledged message and no accounting row', {
    timeout: 180_000,
  }, async () => {
    const w = await engineWorld({ maxSmtpOut: MAX_SMTP_OUT, script: { dataDelayMs: DATA_DELAY_MS } });
    world = w;
    const delivered = () => new Set(w.sink.arrivals.map((a) => a.headers['x-load-id']?.[0])).size;
    let engine: EngineProc = await w.start();
    const kills: { delivered: number; open: number; sinceStart: number }[] = [];
    const chaos = (async () => {
      for (const share of KILL_AT) {
        const before = w.sink.arrivals.length;
        await w.sink.waitFor(() => delivered() >= MESSAGES * share, 60_000, `${share * 100}% at the sink`);
        const open = w.sink.currentConnections();
        const sinceStart = w.sink.arrivals.length - before;
        await engine.kill('SIGKILL');
        kills.push({ delivered: delivered(), open, sinceStart });
        engine = await w.start();
      }
    })();
    const load = await runLoad({
      host: '127.0.0.1',
      port: w.port,
      protocol: 'lmtp',
      connections: 8,
      messages: MESSAGES,
      message: (i) => taggedMessage(i, 'sender@app.test', [`user${i % 50}@${DOMAIN}`], 1500),
      retries: 1000,
      reconnectDelayMs: 100,
    });
    await chaos;
    assert.equal(
      load.accepted,
      MESSAGES,
      `every message acknowledged eventually: ${JSON.stringify(load.replies.filter((_r, i) => load.outcomes[i] !== 'accepted').slice(0, 3))}`,
    );
    assert.equal(kills.length, KILL_AT.length);
    for (const k of kills) {
      assert.ok(k.delivered < MESSAGES, `kill after ${k.delivered} left mail queued`);
      assert.ok(k.sinceStart > 0, 'the killed engine had delivered since its start');
      assert.ok(k.open > 0, 'outbound transactions were open at the kill');
    }

    await w.sink.waitFor(() => delivered() >= MESSAGES, 120_000, 'every acknowledged message at the sink');
    await w.drained();
    await engine.kill('SIGTERM');
    const counts = new Map<string, number>();
    for (const a of w.sink.arrivals) {
      const id = a.headers['x-load-id']?.[0] ?? '?';
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (let i = 0; i < MESSAGES; i++) assert.ok(counts.has(String(i)), `message ${i} delivered`);
    const resent = load.sends.filter((n) => n > 1).length;
    const duplicates = [...counts.entries()]
      .filter(([id]) => load.sends[Number(id)] === 1)
      .reduce((s, [, n]) => s + n - 1, 0);
    assert.ok(
      duplicates <= KILL_AT.length * MAX_SMTP_OUT,
      `duplicates ${duplicates} > ${KILL_AT.length} kills × ${MAX_SMTP_OUT} outbound transactions in flight`,
    );
    assertAcctMatchesSink(w.acctDb, w.sink);
    process.stderr.write(
      `# crash test: kills at ${kills.map((k) => `${k.delivered} delivered/${k.open} open`).join(', ')}; ${duplicates} engine duplicates, ${resent} client re-sends\n`,
    );
  });
});
