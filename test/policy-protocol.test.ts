import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeReply, PolicyReader, parseRequestBlock } from '../sidecar/policy/protocol.js';
import { POLICY_ATTRIBUTES } from '../sidecar/policy/request.js';

/** The 31 attributes of SMTPD_POLICY_README's example (Postfix 2.1 … 3.8), as smtpd sends them. */
const FULL = `request=smtpd_access_policy
protocol_state=RCPT
protocol_name=SMTP
helo_name=some.domain.tld
queue_id=8045F2AB23
sender=foo@bar.tld
recipient=bar@foo.tld
recipient_count=0
client_address=1.2.3.4
client_name=another.domain.tld
reverse_client_name=another.domain.tld
instance=123.456.7
sasl_method=plain
sasl_username=you
sasl_sender=
size=12345
ccert_subject=solaris9.porcupine.org
ccert_issuer=Wietse+20Venema
ccert_fingerprint=C2:9D:F4:87:71:73:73:D9:18:E7:C2:F3:C1:DA:6E:04
encryption_protocol=TLSv1/SSLv3
encryption_cipher=DHE-RSA-AES256-SHA
encryption_keysize=256
etrn_domain=
stress=
ccert_pubkey_fingerprint=68:B3:29:DA:98:93:E3:40:99:C7:D8:AD:5C:B9:C9:40
client_port=1234
policy_context=submission
server_address=10.3.2.1
server_port=54321
compatibility_level=major.minor.patch
mail_version=3.8.0
`;

test('every documented attribute is understood, unknown ones are counted and ignored', () => {
  const r = parseRequestBlock(`${FULL}x_future_attribute=1`);
  assert.ok(r.ok);
  const req = r.value.request;
  assert.equal(r.value.unknown, 1);
  assert.equal(req.sasl_username, 'you');
  assert.equal(req.policy_context, 'submission');
  assert.equal(req.server_port, '54321');
  assert.equal(req.mail_version, '3.8.0');
  assert.equal(req.ccert_issuer, 'Wietse+20Venema');
  const sent = FULL.trim()
    .split('\n')
    .map((l) => l.slice(0, l.indexOf('=')));
  assert.deepEqual([...sent].sort(), [...POLICY_ATTRIBUTES].sort());
});

test('a value may contain "=" and may be empty', () => {
  const r = parseRequestBlock('request=smtpd_access_policy\nccert_subject=CN=a=b\nsender=');
  assert.ok(r.ok);
  assert.equal(r.value.request.ccert_subject, 'CN=a=b');
  assert.equal(r.value.request.sender, '');
});

test('requests split at every byte boundary, or several in one chunk, are framed the same', () => {
  const two = `${FULL}\n${FULL.replace('RCPT', 'DATA')}\n`;
  for (let cut = 1; cut < two.length; cut += 7) {
    const reader = new PolicyReader();
    const out: string[] = [];
    assert.ok(reader.push(two.slice(0, cut), out));
    assert.ok(reader.push(two.slice(cut), out));
    assert.equal(out.length, 2, `cut at ${cut}`);
    assert.equal(reader.pendingLength, 0);
    const states = out.map((b) => {
      const p = parseRequestBlock(b);
      assert.ok(p.ok);
      return p.value.request.protocol_state;
    });
    assert.deepEqual(states, ['RCPT', 'DATA']);
  }
});

test('CRLF line ends are accepted', () => {
  const reader = new PolicyReader();
  const out: string[] = [];
  reader.push('request=smtpd_access_policy\r\nsender=a@b\r\n\r\n', out);
  assert.equal(out.length, 1);
  const p = parseRequestBlock(out[0]!);
  assert.ok(p.ok);
  assert.equal(p.value.request.sender, 'a@b');
});

test('an over-long line poisons the stream before the request completes', () => {
  const reader = new PolicyReader({ maxLineLength: 100, maxRequestLength: 1000, maxAttributes: 10 });
  const out: string[] = [];
  assert.equal(reader.push(`sender=${'x'.repeat(200)}`, out), false);
  assert.equal(reader.error?.code, 'LINE_TOO_LONG');
  assert.equal(reader.push('\n\n', out), false);
  assert.equal(out.length, 0);
});

test('a request over the size limit is refused even when every line is short', () => {
  const reader = new PolicyReader({ maxLineLength: 100, maxRequestLength: 1000, maxAttributes: 1000 });
  const out: string[] = [];
  let ok = true;
  for (let i = 0; i < 200 && ok; i++) ok = reader.push(`x${i}=yyyy\n`, out);
  assert.equal(ok, false);
  assert.equal(reader.error?.code, 'REQUEST_TOO_LARGE');
});

test('a line without "=" and too many attributes are protocol violations', () => {
  const bad = parseRequestBlock('request=smtpd_access_policy\n\u0000\u0001garbage');
  assert.ok(!bad.ok);
  assert.equal(bad.error.code, 'BAD_LINE');
  const many = parseRequestBlock(Array.from({ length: 20 }, (_, i) => `a${i}=1`).join('\n'), {
    maxLineLength: 100,
    maxRequestLength: 10_000,
    maxAttributes: 10,
  });
  assert.ok(!many.ok);
  assert.equal(many.error.code, 'TOO_MANY_ATTRIBUTES');
});

test('finish() returns a request that lacks only its terminating empty line', () => {
  const reader = new PolicyReader();
  const out: string[] = [];
  reader.push('request=smtpd_access_policy\nsender=a@b\n', out);
  assert.equal(out.length, 0);
  assert.equal(reader.finish(), 'request=smtpd_access_policy\nsender=a@b');
  assert.equal(reader.finish(), null);
});

test('a reply is one action line and an empty line; newlines in the text cannot split it', () => {
  assert.equal(encodeReply('DUNNO'), 'action=DUNNO\n\n');
  assert.equal(encodeReply('REJECT 5.1.1 a\nb'), 'action=REJECT 5.1.1 a b\n\n');
});
