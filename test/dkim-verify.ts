/**
 * DKIM verification for tests: a resolver asking only the test DNS (in dns.resolve's shape, for mailauth)
 * and an independent RFC 6376 relaxed/relaxed verifier that shares no code with the signer.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import DNS from 'dns2';
import type { TestDns } from '../harness/index.js';

/** Resolver for mailauth in dns.resolve's shape, asking only the test DNS. */
export function testResolver(dns: TestDns) {
  const client = DNS.UDPClient({ dns: dns.host, port: dns.port });
  return async (name: string, type: string): Promise<string[][]> => {
    const res = await client(name, type);
    if (res.answers.length === 0) {
      const err = new Error(`no ${type} for ${name}`) as Error & { code: string };
      err.code = 'ENOTFOUND';
      throw err;
    }
    return res.answers.map((a) => {
      const data = (a as { data?: string | string[] }).data ?? '';
      return Array.isArray(data) ? data : [data];
    });
  };
}

/** Independent RFC 6376 relaxed/relaxed verification (no mailauth code involved). */
export async function independentVerify(
  raw: Buffer,
  resolve: (name: string) => Promise<string>,
): Promise<boolean> {
  const text = raw.toString('binary');
  const split = text.indexOf('\r\n\r\n');
  const headerText = text.slice(0, split + 2);
  const bodyText = text.slice(split + 4);
  const fields = headerText
    .split(/\r\n(?![ \t])/)
    .filter((f) => f !== '')
    .map((f) => ({ name: f.slice(0, f.indexOf(':')).trim().toLowerCase(), raw: f }));
  const relaxed = (f: string) => {
    const colon = f.indexOf(':');
    const value = f
      .slice(colon + 1)
      .replace(/\r\n/g, '')
      .replace(/[ \t]+/g, ' ')
      .trim();
    return `${f.slice(0, colon).trim().toLowerCase()}:${value}`;
  };
  const sigField = fields.find((f) => f.name === 'dkim-signature');
  assert.ok(sigField, 'message has a DKIM-Signature');
  const tags = new Map<string, string>();
  for (const part of sigField.raw.slice(sigField.raw.indexOf(':') + 1).split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) tags.set(part.slice(0, eq).trim(), part.slice(eq + 1).replace(/\s+/g, ''));
  }
  // Body: relaxed canonicalization, then sha256.
  let lines = bodyText.split('\r\n').map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines = lines.slice(0, -1);
  const canonBody = lines.length ? `${lines.join('\r\n')}\r\n` : '';
  const bh = createHash('sha256').update(Buffer.from(canonBody, 'binary')).digest('base64');
  if (bh !== tags.get('bh')) return false;
  // Headers: bottom-up instance selection; a name with no instance left contributes nothing.
  const used = new Set<number>();
  let data = '';
  for (const name of (tags.get('h') ?? '').split(':').map((n) => n.toLowerCase())) {
    for (let i = fields.length - 1; i >= 0; i--) {
      if (!used.has(i) && fields[i]!.name === name && fields[i] !== sigField) {
        used.add(i);
        data += `${relaxed(fields[i]!.raw)}\r\n`;
        break;
      }
    }
  }
  data += relaxed(sigField.raw)
    .replace(/(b=)[^;]*$/, '$1')
    .replace(/([;\s]b=)[^;]*/, '$1');
  const txt = await resolve(`${tags.get('s')}._domainkey.${tags.get('d')}`);
  const p = /p=([^;\s]+)/.exec(txt.replace(/\s+/g, ''))?.[1] ?? '';
  const sig = Buffer.from(tags.get('b') ?? '', 'base64');
  if (tags.get('a') === 'rsa-sha256') {
    const key = createPublicKey({ key: Buffer.from(p, 'base64'), format: 'der', type: 'spki' });
    return cryptoVerify('sha256', Buffer.from(data, 'binary'), key, sig);
  }
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(p, 'base64')]);
  const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  return cryptoVerify(null, createHash('sha256').update(Buffer.from(data, 'binary')).digest(), key, sig);
}
