/**
 * With the engine (a real `freight engine` process) stopped for a minute, Postfix
 * keeps the mail routed to it by the transport map: deferred in its own queue (`postqueue -j`), the lmtp
 * deferral in its maillog, nothing bounced. Once the engine is back, Postfix's own retry (1 s backoff,
 * no `postqueue -f`) hands everything over and every recipient arrives at the sink.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FreightDaemon } from '../harness/freight.js';
import { type Sink, until } from '../harness/index.js';
import type { TestPostfix } from '../harness/postfix.js';
import { type PostfixEngineWorld, startPostfixEngineWorld } from '../harness/postfix-engine-world.js';
import { submit } from '../harness/smtp-client.js';
import { AcctStore } from '../sidecar/acct/store.js';

const MESSAGES = 50;
const RCPTS_PER_MESSAGE = 4;
const RECIPIENTS = MESSAGES * RCPTS_PER_MESSAGE;
const DOWNTIME_MS = 60_000;

let world: PostfixEngineWorld;
let sink: Sink;
let postfix: TestPostfix;
let engine: FreightDaemon | null = null;

interface QueueJson {
  queue_id: string;
  queue_name: string;
  recipients: { address: string; delay_reason?: string }[];
}

async function queue(): Promise<QueueJson[]> {
  const out = await postfix.postqueue(['-j']);
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as QueueJson);
}

/**
 * showq walks incoming, active, deferred in turn while qmgr moves retried files deferred → incoming →
 * active every second, so one `postqueue -j` can miss a message or list it twice. Merge a few
 * snapshots by queue id until every recipient shows up (or give up and let the caller's assert fail).
 */
async function heldQueue(rcpts: string[]): Promise<QueueJson[]> {
  const byId = new Map<string, QueueJson>();
  for (let i = 0; i < 5; i++) {
    for (const m of await queue()) byId.set(m.queue_id, m);
    const held = new Set([...byId.values()].flatMap((m) => m.recipients.map((r) => r.address)));
    if (rcpts.every((r) => held.has(r))) break;
  }
  return [...byId.values()];
}

const received = () => sink.arrivals.reduce((n, a) => n + a.rcptTo.length, 0);

const startEngine = (): Promise<FreightDaemon> => world.startEngineProcess();

before(async () => {
  world = await startPostfixEngineWorld({
    sinks: [{ at: 21 }],
    mx: { 'isp-a.test': 21 },
    freightConf: (ip) => `
<virtual-mta mta1>
  smtp-source-host ${ip(10)} mta1.freight.test
</virtual-mta>
<domain isp-a.test>
  route-via engine
  virtual-mta mta1
</domain>
`,
    engine: 'none',
  });
  postfix = world.postfix;
  [sink] = world.sinks as [Sink];
});

after(async () => {
  await engine?.stop();
  await world?.stop();
});

test('Postfix holds engine-routed mail while the engine is down for a minute, then hands it all over', async () => {
  // Up first, so the hold below is a real outage of a working engine, not a never-started one.
  engine = await startEngine();
  await submit({ host: postfix.host, port: postfix.port, from: 'app@apps.test', to: 'warmup@isp-a.test' });
  await sink.waitFor(() => received() >= 1, 30_000, 'the warm-up message');
  assert.equal(await engine.stop(), 0, 'engine stops cleanly');
  engine = null;
  const downAt = Date.now();

  const rcpts: string[] = [];
  for (let m = 0; m < MESSAGES; m += 10) {
    await Promise.all(
      Array.from({ length: 10 }, (_, k) => {
        const to = Array.from({ length: RCPTS_PER_MESSAGE }, (_, r) => `u${m + k}-${r}@isp-a.test`);
        rcpts.push(...to);
        return submit({ host: postfix.host, port: postfix.port, from: 'app@apps.test', to });
      }),
    );
  }
  assert.equal(rcpts.length, RECIPIENTS);

  // Postfix's freight (lmtp) transport tried, was refused, and deferred every recipient.
  const deferred = await postfix.waitForLog(
    /postfix\/freight\/lmtp\[\d+\]: \w+: to=<u\d+-\d@isp-a\.test>.*status=deferred \(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: Connection refused\)/,
    { count: RECIPIENTS, timeoutMs: 30_000 },
  );
  assert.ok(deferred.length >= RECIPIENTS);

  // Hold for the full minute, checking along the way that Postfix keeps everything and bounces nothing.
  let checks = 0;
  while (Date.now() - downAt < DOWNTIME_MS) {
    const q = await heldQueue(rcpts);
    const held = new Set(q.flatMap((m) => m.recipients.map((r) => r.address)));
    for (const r of rcpts) assert.ok(held.has(r), `${r} still in the Postfix queue`);
    assert.equal(q.length, MESSAGES, 'every message still queued');
    assert.ok(
      // Retried mail cycles deferred → active (and briefly incoming); never hold, never gone.
      q.every((m) => ['deferred', 'active', 'incoming'].includes(m.queue_name)),
      `queues: ${[...new Set(q.map((m) => m.queue_name))].join(',')}`,
    );
    assert.doesNotMatch(postfix.readLog(), /status=bounced|status=expired|sender non-delivery notification/);
    assert.equal(received(), 1, 'nothing reached the sink while the engine was down');
    checks++;
    await new Promise((r) => setTimeout(r, 3000));
  }
  assert.ok(checks >= 5, `${checks} checks during the outage`);
  const q = await queue();
  assert.ok(
    q.some(
      (m) =>
        m.queue_name === 'deferred' &&
        m.recipients.some((r) => /Connection refused/.test(r.delay_reason ?? '')),
    ),
    'postqueue -j shows the deferral reason',
  );

  // Back up: Postfix's own retry (queue_run_delay / minimal_backoff_time 1 s) delivers the backlog.
  engine = await startEngine();
  try {
    await sink.waitFor(() => received() >= RECIPIENTS + 1, 90_000, `${RECIPIENTS} recipients at the sink`);
  } catch (err) {
    // Say where the mail is, so a failure on a loaded CI machine can be told apart from a lost message.
    const where = (await queue()).map(
      (m) => `${m.queue_id} ${m.queue_name} ${m.recipients[0]?.delay_reason}`,
    );
    const logTail = postfix.readLog().split('\n').slice(-40).join('\n');
    const engineTail = engine.output().split('\n').slice(-40).join('\n');
    throw new Error(
      `${(err as Error).message}; ${received()} arrived\npostfix queue:\n${where.join('\n')}\n` +
        `maillog tail:\n${logTail}\nengine output tail:\n${engineTail}`,
    );
  }
  const got = new Set(sink.arrivals.flatMap((a) => a.rcptTo));
  for (const r of rcpts) assert.ok(got.has(r), `${r} arrived`);
  assert.equal(received(), RECIPIENTS + 1, 'each recipient exactly once');
  const drained = Date.now() + 20_000;
  while ((await queue()).length > 0 && Date.now() < drained) await new Promise((r) => setTimeout(r, 250));
  assert.deepEqual(await queue(), [], 'Postfix queue empty');
  assert.doesNotMatch(postfix.readLog(), /status=bounced|status=expired/);

  // The engine accounted every recipient as delivered, linked to its Postfix queue id.
  const store = AcctStore.open(join(postfix.dir, 'acct.db'), { readonly: true });
  try {
    let n = 0;
    await until(
      () => {
        n = (
          store.db
            .prepare(
              "SELECT count(*) AS n FROM acct WHERE type = 'd' AND path = 'engine' AND rcpt LIKE 'u%' AND postfixQueueId IS NOT NULL",
            )
            .get() as { n: number }
        ).n;
        return n === RECIPIENTS;
      },
      15_000,
      `${RECIPIENTS} d rows`,
    );
    const bounced = store.db.prepare("SELECT count(*) AS n FROM acct WHERE type = 'b'").get() as {
      n: number;
    };
    assert.equal(bounced.n, 0);
  } finally {
    store.close();
  }
});
