/**
 * The outbound session pipelines MAIL, RCPT and DATA (RFC 2920) when the server offers PIPELINING, and
 * reads the replies in order: a scripted raw SMTP server that answers nothing until it has the whole
 * batch proves the client did not wait between commands (it would deadlock otherwise); per-recipient
 * rejections, a refused MAIL and a refused DATA come back as the same per-recipient results as before;
 * without PIPELINING the commands go one by one.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { OutboundSession } from '../sidecar/engine/deliver/session.js';

interface Script {
  pipelining: boolean;
  mail?: string;
  rcpt?: (addr: string) => string;
  data?: string;
}

/** A raw SMTP server; in pipelining mode it replies to the envelope only once DATA has arrived. */
function rawServer(script: Script) {
  const batches: string[][] = [];
  const server = net.createServer((sock) => {
    let buf = '';
    let inData = false;
    let batch: string[] = [];
    sock.write('220 raw.test ESMTP\r\n');
    const envelopeReply = (cmd: string): string => {
      if (cmd.startsWith('MAIL')) return script.mail ?? '250 2.1.0 Ok';
      if (cmd.startsWith('RCPT')) return (script.rcpt ?? (() => '250 2.1.5 Ok'))(/<([^>]*)>/.exec(cmd)![1]!);
      return script.data ?? '354 go ahead';
    };
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        if (inData) {
          // An empty message is just the terminator line.
          const end = buf.startsWith('.\r\n') ? -2 : buf.indexOf('\r\n.\r\n');
          if (end === -1) return;
          buf = buf.slice(end + 5);
          inData = false;
          sock.write('250 2.0.0 queued\r\n');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') {
          sock.write(`250-raw.test\r\n${script.pipelining ? '250-PIPELINING\r\n' : ''}250 8BITMIME\r\n`);
        } else if (verb === 'QUIT') sock.end('221 bye\r\n');
        else if (verb === 'RSET') sock.write('250 2.0.0 Ok\r\n');
        else if (verb === '.') sock.write('250 2.0.0 empty\r\n');
        else if (!script.pipelining) {
          batches.push([line]);
          const reply = envelopeReply(line);
          if (verb === 'DATA' && reply.startsWith('354')) inData = true;
          sock.write(`${reply}\r\n`);
        } else {
          batch.push(line);
          if (verb !== 'DATA') continue;
          batches.push(batch);
          const replies = batch.map(envelopeReply);
          inData = replies.at(-1)!.startsWith('354');
          batch = [];
          sock.write(replies.map((r) => `${r}\r\n`).join(''));
        }
      }
    });
  });
  return {
    batches,
    listen: () =>
      new Promise<number>((r) =>
        server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)),
      ),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const servers: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function session(script: Script) {
  const srv = rawServer(script);
  servers.push(srv);
  const port = await srv.listen();
  const s = await OutboundSession.open({
    address: '127.0.0.1',
    port,
    mxName: 'raw.test',
    localAddress: null,
    ehlo: 'mta1.freight.test',
    useStarttls: false,
    requireStarttls: false,
    connectTimeoutMs: 5000,
    greetingTimeoutMs: 5000,
    commandTimeoutMs: 5000,
    transactionTimeoutMs: 10_000,
  });
  return { s, srv };
}

const body = Buffer.from('Subject: t\r\n\r\nhello\r\n');
const env = (to: string[]) => ({ from: 'bulk@app.test', to, size: body.length, envId: null, ret: null });

describe('outbound SMTP pipelining', () => {
  it('sends MAIL, every RCPT and DATA in one batch and delivers', async () => {
    const { s, srv } = await session({ pipelining: true });
    const replies = await s.send(env(['a@isp.test', 'b@isp.test']), body);
    assert.deepEqual(
      replies.map((r) => r.code),
      [250, 250],
    );
    assert.deepEqual(srv.batches[0], [
      'MAIL FROM:<bulk@app.test> BODY=8BITMIME',
      'RCPT TO:<a@isp.test>',
      'RCPT TO:<b@isp.test>',
      'DATA',
    ]);
    // The connection is reused for a second pipelined transaction.
    await s.send(env(['c@isp.test']), body);
    assert.equal(srv.batches.length, 2);
    s.close();
  });

  it('reports a rejected recipient per recipient and delivers to the rest', async () => {
    const { s } = await session({
      pipelining: true,
      rcpt: (a) => (a.startsWith('bad') ? '550 5.1.1 no such user' : '250 2.1.5 Ok'),
    });
    const replies = await s.send(env(['bad@isp.test', 'good@isp.test']), body);
    assert.deepEqual(
      replies.map((r) => [r.code, r.remote]),
      [
        [550, true],
        [250, true],
      ],
    );
    assert.match(replies[0]!.reply, /^550 5\.1\.1 no such user/);
    s.close();
  });

  it('gives every recipient the MAIL refusal, and the session stays usable after RSET', async () => {
    const { s } = await session({
      pipelining: true,
      mail: '451 4.7.1 try later',
      rcpt: () => '503 5.5.1 need MAIL',
    });
    const replies = await s.send(env(['a@isp.test', 'b@isp.test']), body);
    assert.deepEqual(
      replies.map((r) => r.reply),
      ['451 4.7.1 try later', '451 4.7.1 try later'],
    );
    assert.equal(s.usable, true);
    s.close();
  });

  it('all recipients rejected: each gets its own reply, nothing is sent', async () => {
    const { s } = await session({
      pipelining: true,
      rcpt: () => '550 5.1.1 unknown',
      data: '554 5.5.1 no valid recipients',
    });
    const replies = await s.send(env(['x@isp.test', 'y@isp.test']), body);
    assert.deepEqual(
      replies.map((r) => r.code),
      [550, 550],
    );
    s.close();
  });

  it('a refused DATA defers every accepted recipient with the DATA reply', async () => {
    const { s } = await session({ pipelining: true, data: '451 4.3.0 queue full' });
    const replies = await s.send(env(['a@isp.test']), body);
    assert.equal(replies[0]!.reply, '451 4.3.0 queue full');
    s.close();
  });

  it('without PIPELINING the commands go one at a time', async () => {
    const { s, srv } = await session({ pipelining: false });
    const replies = await s.send(env(['a@isp.test', 'b@isp.test']), body);
    assert.deepEqual(
      replies.map((r) => r.code),
      [250, 250],
    );
    assert.ok(srv.batches.every((b) => b.length === 1));
    assert.equal(srv.batches.length, 4);
    s.close();
  });
});
