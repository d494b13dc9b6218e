/** The socketmap netstring codec: Postfix's framing both ways, split at any byte, and no crash on garbage. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  encodeNetstring,
  formatReply,
  MAX_NETSTRING,
  NetstringDecoder,
  parseReply,
  parseRequest,
} from '../sidecar/ramp/socketmap.js';

const decodeAll = (bytes: Buffer, chunk = bytes.length) => {
  const d = new NetstringDecoder();
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += chunk) {
    d.push(bytes.subarray(i, i + chunk));
    for (;;) {
      const r = d.next();
      if (r.kind === 'incomplete') break;
      if (r.kind === 'malformed') return { out, malformed: r.reason };
      out.push(r.payload.toString('utf8'));
    }
  }
  return { out, malformed: null, pending: d.pending };
};

test('requests are framed as Postfix sends them and parsed into name and key', () => {
  const bytes = Buffer.from('27:transport alice@example.com,11:transport *,');
  const { out, malformed } = decodeAll(bytes);
  assert.equal(malformed, null);
  assert.deepEqual(out, ['transport alice@example.com', 'transport *']);
  assert.deepEqual(parseRequest(Buffer.from(out[0]!)), { name: 'transport', key: 'alice@example.com' });
  assert.deepEqual(parseRequest(Buffer.from('transport "a b"@example.com')), {
    name: 'transport',
    key: '"a b"@example.com',
  });
  assert.equal(parseRequest(Buffer.from('transport')), null);
  assert.equal(parseRequest(Buffer.from(' key')), null);
});

test('replies are the four socketmap forms, exactly', () => {
  assert.equal(
    formatReply({ status: 'OK', data: 'freight:inet:127.0.0.1:2526' }).toString(),
    '30:OK freight:inet:127.0.0.1:2526,',
  );
  assert.equal(formatReply({ status: 'NOTFOUND' }).toString(), '9:NOTFOUND ,');
  assert.equal(formatReply({ status: 'TEMP', reason: 'busy' }).toString(), '9:TEMP busy,');
  assert.equal(formatReply({ status: 'PERM', reason: 'bad\r\nline' }).toString(), '13:PERM bad line,');
  assert.equal(encodeNetstring('é').toString('hex'), Buffer.from('2:é,').toString('hex'));
});

test('a request split at every byte boundary decodes the same', () => {
  const bytes = Buffer.concat(
    ['transport bob@example.org', 'transport *', 'x y'].map((s) => encodeNetstring(s)),
  );
  for (let chunk = 1; chunk <= bytes.length; chunk++) {
    assert.deepEqual(decodeAll(bytes, chunk).out, ['transport bob@example.org', 'transport *', 'x y']);
  }
});

test('malformed framing is reported, not thrown', () => {
  for (const [input, why] of [
    ['abc:xyz,', /decimal/],
    [':xyz,', /missing length/],
    ['03:abc,', /leading zero/],
    ['3:abcd', /does not end/],
    [`${MAX_NETSTRING + 1}:`, /too long/],
    ['9999999999', /too long/],
  ] as const) {
    const r = decodeAll(Buffer.from(input));
    assert.match(r.malformed ?? '', why, input);
  }
  const partial = decodeAll(Buffer.from('12:transport'));
  assert.equal(partial.malformed, null);
  assert.equal(partial.pending, 12);
});

test('any byte sequence yields netstrings, incomplete or malformed — never an exception', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 50 }), (bytes, chunk) => {
      const r = decodeAll(Buffer.from(bytes), chunk);
      for (const p of r.out) parseRequest(Buffer.from(p));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 80 }), { maxLength: 10 }), (payloads) => {
      const bytes = Buffer.concat(payloads.map((p) => encodeNetstring(p)));
      assert.deepEqual(decodeAll(bytes, 7).out, payloads);
    }),
  );
});

test('parseReply reads what formatReply writes', () => {
  for (const reply of [
    { status: 'OK', data: 'smtp:[127.0.0.1]:25' },
    { status: 'NOTFOUND' },
    { status: 'TEMP', reason: 'later' },
    { status: 'PERM', reason: 'no' },
  ] as const) {
    const d = new NetstringDecoder();
    d.push(formatReply(reply));
    const r = d.next();
    assert.equal(r.kind, 'netstring');
    if (r.kind === 'netstring') assert.deepEqual(parseReply(r.payload), reply);
  }
  assert.equal(parseReply(Buffer.from('MAYBE x')), null);
});
