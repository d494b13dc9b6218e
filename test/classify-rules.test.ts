import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BounceClassifier } from '../sidecar/classify/classifier.js';
import { parsePatternLine, parseRuleFile, readRuleFile } from '../sidecar/classify/rules.js';
import { isFreightError } from '../sidecar/common/errors.js';
import { packageRoot } from '../sidecar/common/paths.js';

const FILE = join(packageRoot, 'data', 'bounce-patterns.txt');

test('every shipped rule has an example that the classifier attributes to that very rule', () => {
  const rules = readRuleFile(FILE, 'data/bounce-patterns.txt');
  const c = BounceClassifier.load();
  const all = [...rules.phrases, ...rules.statuses, ...rules.replies];
  assert.ok(all.length > 80);
  const wrong: string[] = [];
  for (const r of all) {
    assert.ok(r.examples.length > 0, `rule at line ${r.line} has no #> example`);
    for (const ex of r.examples) {
      const got = c.classify(ex);
      if (got.rule !== `data/bounce-patterns.txt:${r.line}` || got.category !== r.category)
        wrong.push(`line ${r.line} (${r.category}): "${ex}" → ${got.category} by ${got.rule}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('every phrase and stage rule names where it comes from', () => {
  const rules = readRuleFile(FILE, 'data/bounce-patterns.txt');
  for (const r of rules.phrases) assert.ok(r.from.length > 0, `phrase rule at line ${r.line} has no # from:`);
  for (const r of rules.stageRules) {
    assert.ok(r.examples.length > 0, `stage rule at line ${r.line} has no #> example`);
    const c = BounceClassifier.load();
    for (const ex of r.examples) assert.equal(c.classify(ex).category, r.to, ex);
  }
});

test('wrappers and multi-line replies are unwrapped; 4xx is never hard', () => {
  const c = BounceClassifier.load();
  const gmail =
    "host gmail-smtp-in.l.google.com[142.250.1.26] said: 550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. 550 5.1.1 https://support.google.com/mail/?p=NoSuchUser x1si - gsmtp (in reply to RCPT TO command)";
  assert.deepEqual(c.classify(gmail), { category: 'bad-mailbox', hard: true, rule: c.classify(gmail).rule });
  const soft = c.classify(
    '450 4.1.1 <a@example.com>: Recipient address rejected: User unknown in local recipient table',
  );
  assert.equal(soft.category, 'bad-mailbox');
  assert.equal(soft.hard, false);
  assert.equal(
    c.classify('connect to mx.example.com[192.0.2.1]:25: Connection refused').category,
    'bad-connection',
  );
  assert.equal(
    c.classify('Host or domain name not found. Name service error for name=x.invalid type=A: Host not found')
      .hard,
    true,
  );
  assert.equal(
    c.classify(
      'Host or domain name not found. Name service error for name=x.example type=MX: Host not found, try again',
    ).hard,
    false,
  );
  assert.equal(c.classify('250 2.0.0 OK').category, 'other');
});

test('operator rules come first', () => {
  const c = BounceClassifier.load({
    operatorRules: [{ pattern: /user unknown/i, category: 'other', source: 'x.conf:3' }],
  });
  assert.deepEqual(c.classify('550 5.1.1 user unknown'), {
    category: 'other',
    hard: false,
    rule: 'operator:x.conf:3',
  });
});

test('rule file errors name file:line and the reason', () => {
  assert.equal(typeof parsePatternLine('/ok/ bad-mailbox'), 'object');
  assert.match(String(parsePatternLine('/x/ nonsense')), /unknown bounce category "nonsense"/);
  assert.match(String(parsePatternLine('/(/ other')), /invalid regular expression/);
  try {
    parseRuleFile('/ok/ other\nbogus line\n/[/ spam-related\n', 'rules.txt');
    assert.fail('expected an error');
  } catch (err) {
    assert.ok(isFreightError(err, 'CLASSIFY_RULES_INVALID'));
    assert.match(err.message, /^rules\.txt:2: expected/m);
    assert.match(err.message, /^rules\.txt:3: invalid regular expression/m);
  }
  assert.ok(readFileSync(FILE, 'utf8').length > 0);
});
