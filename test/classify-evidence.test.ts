/**
 * The classifier decides from evidence in the documented order: a specific enhanced code stands against
 * a generic phrase, a specific phrase refines a generic code, the SMTP stage (from the caller or the
 * wrapper) changes what a category means, MTA texts with no code are read by their words, and
 * `freight classify --explain` shows all of it with the deciding rule.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BounceClassifier } from '../sidecar/classify/classifier.js';
import { parseRuleFile } from '../sidecar/classify/rules.js';
import { isFreightError } from '../sidecar/common/errors.js';
import { packageRoot } from '../sidecar/common/paths.js';

const c = BounceClassifier.load();
const category = (reply: string, stage?: 'connect' | 'mail' | 'rcpt') =>
  c.classify(reply, { stage }).category;

/** The shipped rule file's line that starts with `prefix` (the tests name rules by where they are). */
function ruleLine(prefix: string): string {
  const lines = readFileSync(join(packageRoot, 'data', 'bounce-patterns.txt'), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.startsWith(prefix));
  assert.ok(i >= 0, `no rule line starting ${prefix}`);
  return `data/bounce-patterns.txt:${i + 1}`;
}

test('a specific enhanced code stands against a generic phrase; a specific phrase refines a generic code', () => {
  assert.deepEqual(c.classify('550 5.1.1 Address rejected'), {
    category: 'bad-mailbox',
    hard: true,
    rule: ruleLine('status x.1.1 '),
  });
  assert.equal(category('550 5.7.1 <a@example.com>: Relaying denied'), 'relaying-issues');
  assert.equal(category('550 5.0.0 <a@example.com>... User unknown'), 'bad-mailbox');
  assert.equal(
    category('554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org'),
    'spam-related',
  );
  // A phrase that names the code it refines: Gmail's 5.2.1 "disabled" vs its 4.2.1 rate limit.
  assert.equal(
    category('550 5.2.1 The email account that you tried to reach is disabled.'),
    'inactive-mailbox',
  );
  assert.equal(
    category('450 4.2.1 The user you are trying to contact is receiving mail too quickly.'),
    'policy-related',
  );
});

test('the stage decides what a refusal is about: the caller knows it, else the wrapper says it', () => {
  const unknownUser = '550 5.1.1 <bounce@example.org>... Unknown user';
  assert.equal(category(unknownUser), 'bad-mailbox');
  const atMail = c.classify(unknownUser, { stage: 'mail' });
  assert.deepEqual([atMail.category, atMail.hard], ['invalid-sender', false]);
  assert.equal(
    category(`host mx.example.org[192.0.2.1] said: ${unknownUser} (in reply to MAIL FROM command)`),
    'invalid-sender',
  );
  assert.equal(category('550 5.7.1 Access denied', 'mail'), 'invalid-sender');
  assert.equal(category('550 5.7.1 Access denied', 'rcpt'), 'policy-related');
  assert.equal(category('554 5.1.1 mx.example.com no mail for you', 'connect'), 'policy-related');
  assert.equal(
    category(
      'SMTP error from remote mail server after MAIL FROM:<b@example.org> SIZE=1234: 550 5.1.1 Unknown user',
    ),
    'invalid-sender',
  );
  assert.equal(
    category('>>> MAIL From:<b@example.org> SIZE=10 <<< 550 5.1.1 Unknown user'),
    'invalid-sender',
  );
});

test('a code only the log line or DSN wrapper gives is weaker evidence than the reply text', () => {
  const log =
    'Dec  8 03:00:01 mx postfix/smtp[123]: 4ABC: to=<a@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=1, delays=0/0/0.5/0.5, dsn=5.1.1, status=bounced';
  assert.equal(
    category(
      `${log} (host mx.example.com[192.0.2.1] said: 552 Mailbox is full (in reply to RCPT TO command))`,
    ),
    'quota-issues',
  );
  assert.equal(
    category(`${log} (host mx.example.com[192.0.2.1] said: 550 no such thing (in reply to RCPT TO command))`),
    'bad-mailbox',
  );
  assert.equal(
    category('failed,5.1.1 (bad destination mailbox address),smtp;554 Relay access denied'),
    'relaying-issues',
  );
  assert.equal(
    category('failed,5.1.1 (bad destination mailbox address),smtp;550 no such thing'),
    'bad-mailbox',
  );
});

test('MTA texts with no SMTP code are read by their words; hard only when final', () => {
  const expect: Array<[string, string, boolean]> = [
    ['status=expired, returned to sender', 'message-expired', false],
    [
      'all hosts have been failing for a long time and were last tried after this message arrived',
      'message-expired',
      false,
    ],
    ['Could not deliver for the last 432000 seconds. Giving up', 'message-expired', false],
    ['Domain does not exist', 'bad-domain', true],
    ['all relevant MX records point to non-existent hosts', 'bad-domain', true],
    ["Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)", 'bad-domain', true],
    ['Network error on destination MXs', 'no-answer-from-host', false],
    ['The recipient server did not accept our requests to connect.', 'no-answer-from-host', false],
    ['Deferred: Connection timed out with mx.example.com. host name lookup failure', 'routing-errors', false],
    [
      'lost connection with mx.example.com[192.0.2.1] while receiving the initial server greeting',
      'bad-connection',
      false,
    ],
  ];
  for (const [reply, cat, hard] of expect) {
    const got = c.classify(reply);
    assert.equal(`${got.category} ${got.hard}`, `${cat} ${hard}`, reply);
  }
});

test('freight classify --explain prints the evidence and the deciding rule', () => {
  const script = `import { commands } from ${JSON.stringify(join(packageRoot, 'sidecar/classify/cli.ts'))}; process.exitCode = await commands[0].run(process.argv.slice(1));`;
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args], {
      input:
        'host mx.example.com[192.0.2.1] said: 550 5.1.1 <a@example.com>: Address rejected (in reply to RCPT TO command)\n',
      encoding: 'utf8',
      cwd: packageRoot,
    });
  const text = run('--explain');
  assert.equal(text.status, 0, text.stderr);
  const out = text.stdout;
  assert.match(out, /^stage: +rcpt \(from the wrapper\)$/m);
  assert.match(out, /^wrapper: +postfix, host mx\.example\.com$/m);
  assert.match(out, /^provider: +not recognised$/m);
  assert.match(out, /^basic: +550$/m);
  assert.match(out, /^enhanced: +5\.1\.1 \(RFC 3463: Bad destination mailbox address\)/m);
  assert.match(out, /^phrase: .* → policy-related \(not eligible/m);
  assert.ok(out.includes(`decision:  bad-mailbox, hard by ${ruleLine('status x.1.1 ')}`), out);
  const json = run('--explain', '--json', '--stage', 'mail');
  assert.equal(json.status, 0, json.stderr);
  const [e] = JSON.parse(json.stdout) as Array<{
    category: string;
    stage: string;
    stageFrom: string;
    stageRule: string;
  }>;
  assert.deepEqual([e!.category, e!.stage, e!.stageFrom], ['invalid-sender', 'mail', 'context']);
  assert.equal(e!.stageRule, ruleLine('stage mail '));
  const bad = run('--stage', 'lunch');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--stage lunch: expected one of connect, ehlo/);
});

test('rule file errors in phrase, stage and status lines name file:line and the reason', () => {
  const text = [
    'phrase bad-mailbox refines 9.9',
    '    "user unknown"',
    'phrase bad-mailbox at lunch',
    '    "user unknown"',
    'phrase bad-mailbox',
    '    "User Unknown"',
    'stage mail bad-mailbox => nonsense',
    'status x.1.1 bad-mailbox no-quotes',
    'phrase quota-issues',
  ].join('\n');
  try {
    parseRuleFile(text, 'rules.txt');
    assert.fail('expected an error');
  } catch (err) {
    assert.ok(isFreightError(err, 'CLASSIFY_RULES_INVALID'));
    assert.match(err.message, /^rules\.txt:1: bad status code "9\.9" after refines/m);
    assert.match(err.message, /^rules\.txt:3: unknown stage "lunch"/m);
    assert.match(err.message, /^rules\.txt:6: phrase "User Unknown" must be written lower-case/m);
    assert.match(err.message, /^rules\.txt:7: unknown bounce category "nonsense"/m);
    assert.match(err.message, /^rules\.txt:8: expected phrase, \/regex\/ category, status, reply or stage/m);
    assert.match(err.message, /^rules\.txt:9: phrase rule without terms/m);
  }
});
