/**
 * Sink MX servers record what arrives and answer as scripted, as seen by real SMTP clients over
 * loopback sockets: nodemailer, and a line-level client where the exact reply matters.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { addr, freePort, type Sink, type SinkOptions, startSink, testSubnet } from '../harness/index.js';
import { testMessage as message, sinkTransport as transport } from '../harness/smtp-client.js';

const subnet = testSubnet();
let nextHost = 1;
const sinks: Sink[] = [];

after(async () => {
  await Promise.all(sinks.map((s) => s.close()));
});

async function sink(opts: Partial<SinkOptions> = {}): Promise<Sink> {
  const s = await startSink({ host: addr(subnet, nextHost++), port: 0, ...opts });
  sinks.push(s);
  return s;
}

/** Minimal SMTP client for exact replies: one reply (possibly multi-line) per next(), null once closed. */
class LineClient {
  private buffer = '';
  private replies: string[] = [];
  private waiting: ((reply: string | null) => void) | undefined;
  private ended = false;
  readonly connectedAt = Date.now();

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => {
      this.buffer += data;
      let match: RegExpExecArray | null;
      // A reply ends with a line whose code is followed by a space (RFC 5321 4.2.1).
      while ((match = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(this.buffer))) {
        this.buffer = this.buffer.slice(match[0].length);
        this.replies.push(match[0].trimEnd());
      }
      this.flush();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.ended = true;
      this.flush();
    });
  }

  static open(s: Sink, localAddress = addr(subnet, 200)): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: s.host, port: s.port, localAddress }, () =>
        resolve(new LineClient(socket)),
      );
      socket.once('error', reject);
    });
  }

  private flush(): void {
    if (!this.waiting) return;
    const reply = this.replies.shift();
    if (reply === undefined && !this.ended) return;
    const w = this.waiting;
    this.waiting = undefined;
    w(reply ?? null);
  }

  next(): Promise<string | null> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.flush();
    });
  }

  async cmd(line: string): Promise<string | null> {
    this.socket.write(`${line}\r\n`);
    return this.next();
  }

  /** Greeting + EHLO. */
  async hello(name = 'line.freight.test'): Promise<string | null> {
    assert.match((await this.next()) ?? '', /^220 /);
    return this.cmd(`EHLO ${name}`);
  }

  /** A whole transaction; returns the end-of-DATA reply. */
  async send(from: string, to: string[], body = 'Subject: t\r\n\r\nhi\r\n'): Promise<string | null> {
    assert.match((await this.cmd(`MAIL FROM:<${from}>`)) ?? '', /^250/);
    for (const rcpt of to) assert.match((await this.cmd(`RCPT TO:<${rcpt}>`)) ?? '', /^250/);
    assert.match((await this.cmd('DATA')) ?? '', /^354/);
    return this.cmd(`${body}.`);
  }

  write(data: string): void {
    this.socket.write(data);
  }

  close(): void {
    this.socket.destroy();
  }
}

test('records an arrival from nodemailer bound to a chosen source address', async () => {
  const s = await sink({ name: 'mx-a' });
  const source = addr(subnet, 101);
  const t = transport(s, { localAddress: source });
  const info = await t.sendMail(
    message(['one@isp.test', 'two@isp.test'], { headers: { 'X-Trace': ['first', 'second'] } }),
  );
  t.close();
  assert.deepEqual(info.accepted, ['one@isp.test', 'two@isp.test']);
  const [arrival] = await s.waitForArrivals(1);
  assert.ok(arrival);
  assert.equal(arrival.sink, 'mx-a');
  assert.equal(arrival.sourceIp, source);
  assert.equal(arrival.ehlo, 'client.freight.test');
  assert.equal(arrival.mailFrom, 'sender@freight.test');
  assert.deepEqual(arrival.rcptTo, ['one@isp.test', 'two@isp.test']);
  assert.deepEqual(arrival.headers.subject, ['hello']);
  assert.deepEqual(arrival.headers['x-trace'], ['first', 'second']);
  assert.match(arrival.rawHeaders, /^[\s\S]*Subject: hello\r\n/);
  assert.equal(arrival.bodySize, 'body line\r\n'.length * 50);
  assert.ok(arrival.size > arrival.bodySize + arrival.rawHeaders.length);
  assert.equal(arrival.tls, false);
  assert.equal(arrival.raw, undefined);
  await s.waitFor((x) => x.currentConnections() === 0);
  const [conn] = s.connections;
  assert.equal(arrival.connectionId, conn?.id);
  assert.equal(conn?.sourceIp, source);
  assert.equal(conn?.ehlo, 'client.freight.test');
  assert.equal(conn?.messages, 1);
  assert.ok(conn?.closedAt !== undefined && conn.closedAt >= conn.openedAt);
});

test('sinks share one port on distinct addresses and only listen on their own address', async () => {
  const a = addr(subnet, 120);
  const port = await freePort(a);
  const s1 = await sink({ host: a, port });
  const s2 = await sink({ host: addr(subnet, 121), port });
  const t1 = transport(s1);
  const t2 = transport(s2);
  await t1.sendMail(message('x@isp.test'));
  await t2.sendMail(message(['y@isp.test', 'z@isp.test']));
  t1.close();
  t2.close();
  assert.equal(s1.arrivals.length, 1);
  assert.deepEqual(s2.arrivals[0]?.rcptTo, ['y@isp.test', 'z@isp.test']);
  const other = net.connect({ host: addr(subnet, 122), port });
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => other.once('error', resolve));
  assert.equal(err.code, 'ECONNREFUSED');
});

test('EHLO advertises PIPELINING, SIZE and 8BITMIME, and neither AUTH nor STARTTLS without tls', async () => {
  const s = await sink();
  const c = await LineClient.open(s);
  const ehlo = (await c.hello()) ?? '';
  c.close();
  assert.match(ehlo, /^250-PIPELINING$/m);
  assert.match(ehlo, /^250[- ]SIZE \d+$/m);
  assert.match(ehlo, /^250[- ]8BITMIME$/m);
  assert.doesNotMatch(ehlo, /AUTH|STARTTLS/);
});

test('tls sink offers STARTTLS and records TLS arrivals', async () => {
  const s = await sink({ tls: true });
  const c = await LineClient.open(s);
  assert.match((await c.hello()) ?? '', /^250[- ]STARTTLS$/m);
  c.close();
  const t = transport(s, { ignoreTLS: false, requireTLS: true, tls: { rejectUnauthorized: false } });
  await t.sendMail(message('secure@isp.test'));
  t.close();
  assert.equal(s.arrivals[0]?.tls, true);
  await s.waitFor((x) => x.currentConnections() === 0);
  assert.equal(s.connections.at(-1)?.tls, true);
});

test('rejects recipients by pattern at RCPT with the scripted reply', async () => {
  const s = await sink({ script: { rcptTo: [{ match: /^bad/, code: 550, message: '5.1.1 User unknown' }] } });
  const t = transport(s);
  const info = await t.sendMail(message(['good@isp.test', 'bad1@isp.test']));
  t.close();
  assert.deepEqual(info.accepted, ['good@isp.test']);
  assert.deepEqual(info.rejected, ['bad1@isp.test']);
  assert.deepEqual(s.arrivals[0]?.rcptTo, ['good@isp.test']);
  assert.deepEqual(
    s.refusals.map((r) => [r.stage, r.code, r.address]),
    [['rcpt', 550, 'bad1@isp.test']],
  );
  const c = await LineClient.open(s);
  await c.hello();
  await c.cmd('MAIL FROM:<a@freight.test>');
  assert.equal(await c.cmd('RCPT TO:<bad2@isp.test>'), '550 5.1.1 User unknown');
  c.close();
});

test('MAIL and end-of-DATA rules, custom DATA reply, changed while running', async () => {
  const s = await sink({
    script: {
      mailFrom: [{ match: /^spammer@/, code: 553, message: '5.7.1 Sender refused' }],
      data: [{ match: /@blocked\.test$/, code: 554, message: '5.7.1 Message rejected as spam' }],
      dataReply: { code: 250, message: '2.0.0 Ok: queued as ABC123' },
    },
  });
  const c = await LineClient.open(s);
  await c.hello();
  assert.equal(await c.cmd('MAIL FROM:<spammer@bad.test>'), '553 5.7.1 Sender refused');
  assert.equal(await c.send('ok@freight.test', ['a@blocked.test']), '554 5.7.1 Message rejected as spam');
  assert.equal(await c.cmd('RSET'), '250 Flushed');
  assert.equal(await c.send('ok@freight.test', ['a@fine.test']), '250 2.0.0 Ok: queued as ABC123');
  s.setScript({ dataReply: { code: 451, message: '4.3.0 Try later' } });
  assert.equal(await c.send('ok@freight.test', ['b@fine.test']), '451 4.3.0 Try later');
  c.close();
  assert.deepEqual(
    s.arrivals.map((a) => a.rcptTo[0]),
    ['a@fine.test'],
  );
  assert.deepEqual(
    s.refusals.map((r) => [r.stage, r.code]),
    [
      ['mail', 553],
      ['data', 554],
      ['data', 451],
    ],
  );
});

test('421 and close after N messages on one connection', async () => {
  const s = await sink({ script: { maxMessagesPerConnection: 2 } });
  const c = await LineClient.open(s);
  await c.hello();
  assert.match((await c.send('a@freight.test', ['1@isp.test'])) ?? '', /^250 /);
  assert.match((await c.send('a@freight.test', ['2@isp.test'])) ?? '', /^250 /);
  assert.equal(await c.cmd('MAIL FROM:<a@freight.test>'), '421 4.7.0 Too many messages on this connection');
  assert.equal(await c.next(), null, 'server closes the connection after 421');
  assert.equal(s.arrivals.length, 2);
  assert.equal(s.arrivals[0]?.connectionId, s.arrivals[1]?.connectionId);
  await s.waitFor((x) => x.currentConnections() === 0);
  assert.equal(s.connections[0]?.messages, 2);
});

test('drop during DATA closes the socket with no reply and records no arrival', async () => {
  const s = await sink({ script: { dropDuringData: true } });
  const c = await LineClient.open(s);
  await c.hello();
  await c.cmd('MAIL FROM:<a@freight.test>');
  await c.cmd('RCPT TO:<x@isp.test>');
  assert.match((await c.cmd('DATA')) ?? '', /^354/);
  c.write('Subject: dropped\r\n\r\n');
  c.write(`${'x'.repeat(1000)}\r\n.\r\n`);
  assert.equal(await c.next(), null);
  assert.equal(s.arrivals.length, 0);
  assert.deepEqual(
    s.refusals.map((r) => [r.stage, r.code]),
    [['data', 0]],
  );
  const t = transport(s);
  await assert.rejects(t.sendMail(message('y@isp.test')));
  t.close();
});

test('slow banner holds the 220 greeting', async () => {
  const s = await sink({ script: { bannerDelayMs: 400 } });
  const c = await LineClient.open(s);
  const banner = await c.next();
  const waited = Date.now() - c.connectedAt;
  c.close();
  assert.match(banner ?? '', /^220 /);
  assert.ok(waited >= 400, `banner after ${waited} ms`);
});

test('connectReply refuses the session at greeting', async () => {
  const s = await sink({ script: { connectReply: { code: 554, message: '5.7.1 No mail from you' } } });
  const c = await LineClient.open(s);
  assert.equal(await c.next(), '554 5.7.1 No mail from you');
  assert.equal(await c.next(), null);
  assert.equal(s.refusals[0]?.stage, 'connect');
});

test('counts concurrent connections exactly', async () => {
  const s = await sink({ script: { dataDelayMs: 300 } });
  const transports = Array.from({ length: 5 }, (_, i) =>
    transport(s, { localAddress: addr(subnet, 150 + (i % 2)) }),
  );
  await Promise.all(transports.map((t, i) => t.sendMail(message(`c${i}@isp.test`))));
  transports.forEach((t) => {
    t.close();
  });
  await s.waitFor((x) => x.currentConnections() === 0);
  assert.equal(s.maxConcurrentConnections(), 5);
  assert.equal(s.maxConcurrentConnections(addr(subnet, 150)), 3);
  assert.equal(s.maxConcurrentConnections(addr(subnet, 151)), 2);
  assert.equal(s.connections.length, 5);
  const bySource = s.arrivalsBySourceIp();
  assert.equal(bySource.get(addr(subnet, 150))?.length, 3);
  assert.equal(bySource.get(addr(subnet, 151))?.length, 2);
  const times = s.arrivalTimes();
  assert.equal(s.arrivalsBetween(times[0]!, times.at(-1)! + 1).length, 5);
  assert.equal(s.peakArrivals(60_000), 5);
  assert.equal(s.ratePerSecond(60_000), 5 / 60);

  // Raw sockets count from accept, before any SMTP is spoken.
  s.reset();
  assert.equal(s.maxConcurrentConnections(), 0);
  const raw = await Promise.all(Array.from({ length: 4 }, () => LineClient.open(s)));
  await s.waitFor((x) => x.currentConnections() === 4);
  raw.forEach((c) => {
    c.close();
  });
  await s.waitFor((x) => x.currentConnections() === 0);
  assert.equal(s.maxConcurrentConnections(), 4);
});

test('seeded deferral repeats the same decisions', async () => {
  const script = { defer: { probability: 0.5, seed: 42, code: 450, message: '4.2.1 Greylisted' } };
  const s = await sink({ script });
  const rcpts = Array.from({ length: 20 }, (_, i) => `r${i}@isp.test`);
  const run = async () => {
    const c = await LineClient.open(s);
    await c.hello();
    await c.cmd('MAIL FROM:<a@freight.test>');
    const deferred: string[] = [];
    for (const r of rcpts) {
      const reply = await c.cmd(`RCPT TO:<${r}>`);
      if (reply === '450 4.2.1 Greylisted') deferred.push(r);
      else assert.match(reply ?? '', /^250/);
    }
    c.close();
    return deferred;
  };
  const first = await run();
  s.setScript(script);
  const second = await run();
  assert.deepEqual(second, first);
  assert.ok(first.length > 0 && first.length < rcpts.length, `${first.length} deferred`);
});

test('rate limit refuses MAIL once more than max messages arrived in the window', async () => {
  const s = await sink({
    script: { rateLimit: { max: 3, windowMs: 60_000, code: 421, message: '4.7.0 [TS01] Slow down' } },
  });
  const c = await LineClient.open(s);
  await c.hello();
  for (let i = 0; i < 3; i++)
    assert.match((await c.send('a@freight.test', [`${i}@isp.test`])) ?? '', /^250 /);
  assert.equal(await c.cmd('MAIL FROM:<a@freight.test>'), '421 4.7.0 [TS01] Slow down');
  assert.equal(await c.next(), null);
  assert.equal(s.arrivals.length, 3);
});

test('keepRaw keeps the message bytes; reset forgets arrivals', async () => {
  const s = await sink({ keepRaw: true });
  const c = await LineClient.open(s);
  await c.hello();
  await c.send(
    'a@freight.test',
    ['k@isp.test'],
    'Subject: raw\r\nX-A: 1\r\n folded\r\n\r\nline\r\n..dot\r\n',
  );
  c.close();
  const [a] = await s.waitForArrivals(1);
  assert.equal(a?.raw?.toString(), 'Subject: raw\r\nX-A: 1\r\n folded\r\n\r\nline\r\n.dot\r\n');
  assert.equal(a?.rawHeaders, 'Subject: raw\r\nX-A: 1\r\n folded\r\n');
  assert.deepEqual(a?.headers['x-a'], ['1 folded']);
  assert.equal(a?.bodySize, 'line\r\n.dot\r\n'.length);
  s.reset();
  assert.equal(s.arrivals.length, 0);
  assert.equal(s.refusals.length, 0);
});

test('waitForArrivals rejects with a clear error on timeout; bad scripts are refused', async () => {
  const s = await sink();
  await assert.rejects(s.waitForArrivals(1, 50), { code: 'WORLD_SINK_TIMEOUT' });
  assert.throws(() => s.setScript({ defer: { probability: 2 } }), { code: 'WORLD_SINK_BAD_SCRIPT' });
  assert.throws(() => s.setScript({ rcptTo: [{ match: /x/, code: 99, message: 'no' }] }), {
    code: 'WORLD_SINK_BAD_SCRIPT',
  });
  await assert.rejects(startSink({ host: '10.0.0.1', port: 0 }), { code: 'WORLD_NOT_LOOPBACK' });
  await assert.rejects(startSink({ host: s.host, port: s.port }), { code: 'WORLD_SINK_LISTEN' });
});
