/**
 * DKIM signing: RSA and Ed25519 signatures made by DkimSigner verify against keys published in the test
 * DNS, both with mailauth's verifier and with an independent RFC 6376 verifier written here; the body
 * hash is computed once per message (a second attempt reads only the header block); a missing key is an
 * error, never an unsigned result.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import nodemailer from 'nodemailer';
import { startDnsServer, startSink, type TestDns } from '../harness/index.js';
import { isFreightError } from '../sidecar/common/errors.js';
import { loadDomainKeys } from '../sidecar/dkim/keys.js';
import { type DkimMessage, DkimSigner } from '../sidecar/dkim/signer.js';
import { independentVerify, testResolver } from './dkim-verify.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');

function rsaTxt(): string {
  const der = rsa.publicKey.export({ type: 'spki', format: 'der' });
  return `v=DKIM1; k=rsa; p=${der.toString('base64')}`;
}
function edTxt(): string {
  // RFC 8463: p= is the raw 32-byte key, i.e. the SPKI DER without its 12-byte prefix.
  const der = ed.publicKey.export({ type: 'spki', format: 'der' });
  return `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}`;
}

const body = `${'A line of body text that is long enough to matter.  \r\n'.repeat(3000)}\r\n\r\n`;
const headers = [
  'From: News <news@example.com>',
  'To: someone@isp.test',
  'Subject: Weekly   news',
  '\t(folded subject continuation)',
  'Date: Thu, 05 Mar 2026 06:26:05 +0000',
  'Message-ID: <m1@example.com>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=utf-8',
].join('\r\n');
const message = Buffer.from(`${headers}\r\n\r\n${body}`);

/** A spooled message whose reads are counted, served one line per chunk. */
function countingMessage(id: string, bytes: Buffer): DkimMessage & { bytesRead: number } {
  const m = {
    id,
    bytesRead: 0,
    open() {
      const lines: Buffer[] = [];
      let start = 0;
      for (let i = 0; i < bytes.length; i++) {
        if (bytes[i] === 0x0a) {
          lines.push(bytes.subarray(start, i + 1));
          start = i + 1;
        }
      }
      if (start < bytes.length) lines.push(bytes.subarray(start));
      let next = 0;
      return new Readable({
        highWaterMark: 1,
        read() {
          const line = lines[next++];
          if (!line) return void this.push(null);
          m.bytesRead += line.length;
          this.push(line);
        },
      });
    },
  };
  return m;
}

describe('DKIM signing', () => {
  let dns: TestDns;
  let dir: string;
  let signer: DkimSigner;
  let resolver: ReturnType<typeof testResolver>;

  before(async () => {
    dns = await startDnsServer();
    dns.txt('rsa1._domainkey.example.com', [rsaTxt()]);
    dns.txt('ed1._domainkey.example.org', [edTxt()]);
    dir = mkdtempSync(join(tmpdir(), 'freight-dkim-'));
    writeFileSync(join(dir, 'rsa.pem'), rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'ed.pem'), ed.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const keys = loadDomainKeys([
      { selector: 'rsa1', domain: 'example.com', keyPath: join(dir, 'rsa.pem'), origin: 'default' },
      { selector: 'ed1', domain: 'example.org', keyPath: join(dir, 'ed.pem'), origin: 'default' },
    ]);
    signer = new DkimSigner(keys);
    resolver = testResolver(dns);
  });
  after(async () => {
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const viaTestDns = async (name: string) => (await resolver(name, 'TXT'))[0]!.join('');

  test('RSA signature verifies with mailauth and with an independent verifier', async () => {
    const sig = await signer.sign(countingMessage('rsa-msg', message));
    assert.equal(sig.algorithm, 'rsa-sha256');
    assert.equal(sig.domain, 'example.com');
    const signed = Buffer.concat([Buffer.from(sig.header), message]);
    const result = await dkimVerify(signed, { resolver });
    assert.equal(result.results[0]?.status.result, 'pass', JSON.stringify(result.results[0]?.status));
    assert.equal(await independentVerify(signed, viaTestDns), true);
    const bodyChanged = Buffer.from(
      signed.toString('binary').replace('A line of body', 'A line of bodY'),
      'binary',
    );
    assert.equal(await independentVerify(bodyChanged, viaTestDns), false);
    // relaxed/relaxed and From oversigned: h= names From once more than the message has.
    assert.match(sig.header, /c=relaxed\/relaxed/);
    const h = /h=([^;]+)/
      .exec(sig.header.replace(/\r\n\s+/g, ''))![1]!
      .toLowerCase()
      .split(':');
    assert.equal(h.filter((n) => n === 'from').length, 2);
  });

  test('Ed25519 signature (dkim-identity @example.org) verifies', async () => {
    const sig = await signer.sign(countingMessage('ed-msg', message), { identity: '@example.org' });
    assert.equal(sig.algorithm, 'ed25519-sha256');
    const signed = Buffer.concat([Buffer.from(sig.header), message]);
    const result = await dkimVerify(signed, { resolver });
    assert.equal(result.results[0]?.status.result, 'pass', JSON.stringify(result.results[0]?.status));
    assert.equal(await independentVerify(signed, viaTestDns), true);
  });

  test('a From header added after signing breaks the signature (oversigning)', async () => {
    const sig = await signer.sign(countingMessage('over-msg', message));
    const tampered = Buffer.concat([
      Buffer.from(sig.header),
      Buffer.from('From: evil@attacker.test\r\n'),
      message,
    ]);
    const result = await dkimVerify(tampered, { resolver });
    assert.notEqual(result.results[0]?.status.result, 'pass');
  });

  test('the body hash is computed once: a second attempt reads only the header block', async () => {
    const m = countingMessage('once-msg', message);
    const first = await signer.sign(m);
    assert.equal(m.bytesRead, message.length);
    m.bytesRead = 0;
    const second = await signer.sign(m);
    assert.equal(second.bodyHash, first.bodyHash);
    const headerBytes = Buffer.byteLength(`${headers}\r\n\r\n`);
    const longestLine = Math.max(
      ...message
        .toString()
        .split('\n')
        .map((l) => l.length + 1),
    );
    assert.ok(m.bytesRead <= headerBytes + longestLine, `read ${m.bytesRead} of ${message.length} bytes`);
    // Both signatures are valid on their own.
    const result = await dkimVerify(Buffer.concat([Buffer.from(second.header), message]), { resolver });
    assert.equal(result.results[0]?.status.result, 'pass');
    signer.forget('once-msg');
    m.bytesRead = 0;
    await signer.sign(m);
    assert.equal(m.bytesRead, message.length, 'after forget() the body is hashed again');
  });

  test('a bare-LF message is hashed as the CRLF it will be sent as', async () => {
    const lf = Buffer.from(message.toString('binary').replace(/\r\n/g, '\n'), 'binary');
    const sig = await signer.sign(countingMessage('lf-msg', lf));
    const result = await dkimVerify(Buffer.concat([Buffer.from(sig.header), message]), { resolver });
    assert.equal(result.results[0]?.status.result, 'pass');
  });

  test('no key for the From domain is DKIM_NO_KEY, not an unsigned message', async () => {
    const other = Buffer.from(message.toString().replace('news@example.com', 'news@nokey.test'));
    await assert.rejects(signer.sign(countingMessage('nokey', other)), (err) =>
      isFreightError(err, 'DKIM_NO_KEY'),
    );
    await assert.rejects(
      signer.sign(countingMessage('nofrom', Buffer.from('Subject: x\r\n\r\nbody\r\n'))),
      (err) => isFreightError(err, 'DKIM_NO_FROM'),
    );
  });

  test('a subdomain From signs with the parent domain key', async () => {
    const sub = Buffer.from(message.toString().replace('news@example.com', 'news@mail.example.com'));
    const sig = await signer.sign(countingMessage('sub', sub));
    assert.equal(sig.domain, 'example.com');
  });

  test('a signed message delivered over SMTP verifies at the sink', async () => {
    const sink = await startSink({ host: '127.0.0.1', port: 0, keepRaw: true });
    try {
      const sig = await signer.sign(countingMessage('smtp-msg', message));
      const transport = nodemailer.createTransport({ host: sink.host, port: sink.port, ignoreTLS: true });
      try {
        await transport.sendMail({
          envelope: { from: 'news@example.com', to: ['someone@isp.test'] },
          raw: Buffer.concat([Buffer.from(sig.header), message]),
        });
      } finally {
        transport.close();
      }
      const [arrival] = await sink.waitForArrivals(1);
      assert.ok(arrival?.raw);
      const result = await dkimVerify(arrival.raw, { resolver });
      assert.equal(result.results[0]?.status.result, 'pass');
      assert.equal(await independentVerify(arrival.raw, viaTestDns), true);
    } finally {
      await sink.close();
    }
  });
});
