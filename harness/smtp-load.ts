/**
 * A lean SMTP/LMTP load generator: N concurrent connections, each reused for many transactions, no
 * MIME work, so it costs the machine as little CPU as possible next to the server under test. It
 * records which messages the server acknowledged (every recipient 250), which it refused, and which
 * were in doubt (connection lost after DATA was sent) — what crash tests compare against the sinks.
 */
import net from 'node:net';

export interface Reply {
  code: number;
  text: string;
}

/** One client connection with a reply reader (multi-line replies joined). */
export class SmtpClient {
  private socket!: net.Socket;
  private buf = '';
  private lines: string[] = [];
  private waiters: ((r: Reply | Error) => void)[] = [];
  private closedErr: Error | null = null;

  static async open(
    host: string,
    port: number,
    timeoutMs = 30_000,
    localAddress?: string,
  ): Promise<SmtpClient> {
    const c = new SmtpClient();
    await new Promise<void>((resolve, reject) => {
      c.socket = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) }, () => resolve());
      c.socket.once('error', reject);
    });
    c.socket.setTimeout(timeoutMs, () => c.socket.destroy(new Error('client timeout')));
    c.socket.setNoDelay(true);
    c.socket.on('data', (d: Buffer) => c.onData(d.toString('latin1')));
    c.socket.on('error', (err) => c.fail(err));
    c.socket.on('close', () => c.fail(new Error('connection closed')));
    return c;
  }

  private onData(text: string): void {
    this.buf += text;
    let nl = this.buf.indexOf('\n');
    while (nl >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      this.lines.push(line);
      if (/^\d{3} /.test(line) || !/^\d{3}-/.test(line)) {
        const all = this.lines;
        this.lines = [];
        const reply = { code: Number(line.slice(0, 3)) || 0, text: all.join('\n') };
        this.waiters.shift()?.(reply);
      }
      nl = this.buf.indexOf('\n');
    }
  }

  private fail(err: Error): void {
    this.closedErr ??= err;
    for (const w of this.waiters.splice(0)) w(err);
  }

  /** Next reply from the server. */
  read(): Promise<Reply> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    return new Promise((resolve, reject) => {
      this.waiters.push((r) => (r instanceof Error ? reject(r) : resolve(r)));
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async command(line: string): Promise<Reply> {
    const p = this.read();
    this.write(`${line}\r\n`);
    return p;
  }

  close(): void {
    this.socket.end('QUIT\r\n');
    this.socket.destroySoon?.();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Escape leading dots and terminate with CRLF.CRLF (the message must already use CRLF). */
export function dotStuff(data: Buffer): Buffer {
  const text = data.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(text.endsWith('\r\n') ? `${text}.\r\n` : `${text}\r\n.\r\n`, 'latin1');
}

export interface TestMessage {
  from: string;
  to: string[];
  /** RFC 5322 message with CRLF line ends. */
  data: Buffer;
}

export type Outcome = 'accepted' | 'refused' | 'in-doubt' | 'not-sent';

export interface TransactionResult {
  outcome: Outcome;
  /** Server's reply to the final DATA (first one for LMTP). */
  reply: string;
  /** LMTP: one reply per recipient. */
  replies: Reply[];
}

/** Send one message over an open, greeted connection. */
export async function sendMessage(
  c: SmtpClient,
  msg: TestMessage,
  protocol: 'lmtp' | 'smtp',
  onDataSent?: () => void,
): Promise<TransactionResult> {
  const mail = await c.command(`MAIL FROM:<${msg.from}>`);
  if (mail.code !== 250) {
    await c.command('RSET');
    return { outcome: 'refused', reply: mail.text, replies: [] };
  }
  let good = 0;
  for (const rcpt of msg.to) if ((await c.command(`RCPT TO:<${rcpt}>`)).code === 250) good++;
  if (good === 0) {
    await c.command('RSET');
    return { outcome: 'refused', reply: 'no recipient accepted', replies: [] };
  }
  const data = await c.command('DATA');
  if (data.code !== 354) return { outcome: 'refused', reply: data.text, replies: [] };
  const replies: Reply[] = [];
  const n = protocol === 'lmtp' ? good : 1;
  const pending = Array.from({ length: n }, () => c.read());
  // A dropped connection rejects every pending reply; the loop below sees the first, the rest are moot.
  for (const p of pending) p.catch(() => {});
  c.write(dotStuff(msg.data));
  onDataSent?.();
  try {
    for (const p of pending) replies.push(await p);
  } catch (err) {
    return { outcome: 'in-doubt', reply: String(err), replies };
  }
  const ok = replies.every((r) => r.code === 250) && good === msg.to.length;
  return { outcome: ok ? 'accepted' : 'refused', reply: replies[0]?.text ?? '', replies };
}

export async function greet(c: SmtpClient, protocol: 'lmtp' | 'smtp', helo = 'loadgen.test'): Promise<void> {
  const banner = await c.read();
  if (banner.code !== 220) throw new Error(`banner: ${banner.text}`);
  const r = await c.command(`${protocol === 'lmtp' ? 'LHLO' : 'EHLO'} ${helo}`);
  if (r.code !== 250) throw new Error(`${protocol === 'lmtp' ? 'LHLO' : 'EHLO'}: ${r.text}`);
}

export interface LoadOptions {
  host: string;
  port: number;
  protocol: 'lmtp' | 'smtp';
  connections: number;
  messages: number;
  /** Message number i (0-based). */
  message: (i: number) => TestMessage;
  /** Transactions per connection before reconnecting (default unlimited). */
  perConnection?: number;
  /** Stop starting new transactions (e.g. while the server is being killed). */
  shouldStop?: () => boolean;
  /** Wait between failed connection attempts (ms). */
  reconnectDelayMs?: number;
  /** Give up on a message after this many refusals/in-doubt results (default 0: record and move on). */
  retries?: number;
}

export interface LoadResult {
  outcomes: Outcome[];
  /** DATA transmissions per message (more than 1: the client retried, so duplicates are legitimate). */
  sends: number[];
  replies: string[];
  elapsedMs: number;
  accepted: number;
  refused: number;
  inDoubt: number;
}

/** Standard test message: a small body tagged with `X-Load-Id: <i>`. */
export function taggedMessage(
  i: number,
  from: string,
  to: string[],
  bodyBytes = 2000,
  extraHeaders = '',
): TestMessage {
  const line = 'The quick brown fox jumps over the lazy dog 0123456789.\r\n';
  const body = line.repeat(Math.max(1, Math.ceil(bodyBytes / line.length)));
  const head =
    `From: <${from}>\r\nTo: ${to.map((t) => `<${t}>`).join(', ')}\r\nSubject: load ${i}\r\n` +
    `Message-ID: <load-${i}@loadgen.test>\r\nX-Load-Id: ${i}\r\n${extraHeaders}\r\n`;
  return { from, to, data: Buffer.from(head + body) };
}

/** Run `messages` transactions over `connections` parallel connections. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const outcomes: Outcome[] = new Array(opts.messages).fill('not-sent');
  const replies: string[] = new Array(opts.messages).fill('');
  const sends: number[] = new Array(opts.messages).fill(0);
  let next = 0;
  const started = Date.now();
  const worker = async () => {
    let c: SmtpClient | null = null;
    let used = 0;
    while (!opts.shouldStop?.()) {
      const i = next++;
      if (i >= opts.messages) break;
      let tries = 0;
      for (;;) {
        try {
          if (!c) {
            c = await SmtpClient.open(opts.host, opts.port);
            await greet(c, opts.protocol);
            used = 0;
          }
          const r = await sendMessage(c, opts.message(i), opts.protocol, () => sends[i]!++);
          outcomes[i] = r.outcome;
          replies[i] = r.reply;
          used++;
          if (r.outcome === 'in-doubt') {
            c.destroy();
            c = null;
          } else if (opts.perConnection && used >= opts.perConnection) {
            c.close();
            c = null;
          }
        } catch (err) {
          c?.destroy();
          c = null;
          if (outcomes[i] === 'not-sent') replies[i] = String(err);
          await new Promise((r) => setTimeout(r, opts.reconnectDelayMs ?? 50));
        }
        if (outcomes[i] === 'accepted' || tries++ >= (opts.retries ?? 0) || opts.shouldStop?.()) break;
      }
    }
    c?.close();
  };
  await Promise.all(Array.from({ length: opts.connections }, worker));
  const count = (o: Outcome) => outcomes.filter((x) => x === o).length;
  return {
    outcomes,
    sends,
    replies,
    elapsedMs: Date.now() - started,
    accepted: count('accepted'),
    refused: count('refused'),
    inDoubt: count('in-doubt'),
  };
}
