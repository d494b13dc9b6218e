/** freight.conf: every construct of the language loads into the typed model, and resolution picks the right block. */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { checkConfig, loadConfig } from '../sidecar/config/load.js';
import { stripComment } from '../sidecar/config/syntax.js';
import { parseDuration, parseRate, parseSize } from '../sidecar/config/units.js';

const fixtures = resolve(import.meta.dirname, 'fixtures/config');
const full = resolve(fixtures, 'full.conf');

test('units: durations, rates, sizes in PowerMTA notation', () => {
  assert.equal(parseDuration('15m'), 900_000);
  assert.equal(parseDuration('4d12h'), 4.5 * 86_400_000);
  assert.equal(parseDuration('90'), 90_000);
  assert.deepEqual(parseRate('3500/h'), { count: 3500, perMs: 3_600_000 });
  assert.deepEqual(parseRate('100/10m'), { count: 100, perMs: 600_000 });
  assert.equal(parseRate('unlimited'), null);
  assert.equal(parseSize('20M'), 20 * 1024 * 1024);
  assert.throws(() => parseRate('100/'), /invalid rate/);
  assert.throws(() => parseDuration('15x'), /invalid duration/);
});

test('comments: # outside quotes and regexes; a lone leading slash in a path does not hide a comment', () => {
  assert.equal(stripComment('max-smtp-out 10 # ten').trim(), 'max-smtp-out 10');
  assert.equal(stripComment('reply /a # b/ mode=backoff # c').trim(), 'reply /a # b/ mode=backoff');
  assert.equal(stripComment('jobid-header "X # Job" # c').trim(), 'jobid-header "X # Job"');
  assert.equal(stripComment('acct-db /acct.db # the db').trim(), 'acct-db /acct.db');
});

test('a full config loads: globals, sources, vmtas, pools, includes, pattern lists, keys', () => {
  const { config, errors, warnings } = checkConfig(full);
  assert.deepEqual(errors, []);
  assert.deepEqual(warnings, []);
  assert.ok(config);
  assert.equal(config.files.length, 3, 'main file plus the two files of the include glob');
  assert.equal(config.global.hostName, 'mta.test.example');
  assert.equal(config.global.spoolDir, resolve(fixtures, 'spool'));
  assert.equal(config.global.acctDb, resolve(fixtures, 'acct db/acct.db'));
  assert.deepEqual(config.global.smtpListener, { host: '127.0.0.1', port: 2600 });
  assert.deepEqual(config.global.dnsServer, { host: '127.0.0.1', port: 5353 });
  assert.equal(config.global.remoteSmtpPort, 2525);
  assert.equal(config.global.httpApiKey, 'secret-key');
  assert.equal(config.global.postmaster, 'ops@test.example');
  assert.deepEqual(
    config.sources.map((s) => [s.cidr, s.alwaysAllowRelaying, s.processXVirtualMta, s.jobidHeader]),
    [
      ['127.0.0.0/8', true, true, 'X-Job'],
      ['::1', false, false, null],
    ],
  );
  assert.equal(config.virtualMtas.get('mta1')?.sourceIp, '127.0.0.10');
  assert.equal(config.virtualMtas.get('mta2')?.hostName, 'mta2.test.example');
  assert.deepEqual(config.pools.get('pool1')?.members, ['mta1', 'mta2']);
  const replies = config.patternLists.get('replies');
  assert.equal(replies?.patterns.length, 3);
  assert.ok(replies?.patterns[0]?.pattern.test('421 TSS04 # not a comment'));
  assert.deepEqual(replies?.patterns[1]?.actions, [{ kind: 'disable-source-ip', reenableAfter: 3_600_000 }]);
  assert.equal(config.bounceCategoryPatterns[0]?.category, 'quota-issues');
  assert.deepEqual(
    config.domainKeys.map((k) => [k.selector, k.domain, k.keyPath]),
    [['s1', 'test.example', resolve(fixtures, 'keys/s1.pem')]],
  );
});

test('resolution: defaults <- <domain *> <- most specific block <- the vmta nested block', () => {
  const config = loadConfig(full);
  const gmail = config.domainSettings('GMAIL.com');
  assert.equal(gmail.maxSmtpOut, 10);
  assert.deepEqual(gmail.retryAfter, [900_000, 1_800_000, 3_600_000]);
  assert.equal(gmail.connectionIdleTimeout, 90_000, 'bare number = seconds');
  assert.equal(gmail.virtualMtaPool, 'pool1', 'inherited from <domain *>');
  assert.equal(gmail.maxRcptPerMessage, 10, 'PowerMTA default');
  assert.equal(gmail.routeVia, 'postfix', 'nothing moves to the engine until the operator says so');
  const origin = gmail.origins['max-smtp-out'];
  assert.ok(origin !== 'default' && origin?.file.endsWith('10-gmail.conf') && origin.line === 2);
  assert.equal(gmail.origins['max-rcpt-per-message'], 'default');

  assert.equal(config.domainSettings('gmail.com', 'mta1').maxSmtpOut, 3, 'vmta nested block wins');
  assert.equal(config.domainSettings('gmail.com', 'mta2').maxSmtpOut, 10);

  const sub = config.domainSettings('news.example.com');
  assert.deepEqual(sub.maxMsgRate, { count: 100, perMs: 600_000 });
  assert.equal(sub.bounceAfter, 4.5 * 86_400_000);
  assert.equal(sub.useStarttls, true);
  const exact = config.domainSettings('mail.example.com');
  assert.equal(exact.useStarttls, false);
  assert.equal(exact.maxMsgRate, null, 'the exact block wins over the wildcard, not merged with it');
  assert.equal(
    config.domainSettings('example.com').bounceAfter,
    4 * 86_400_000,
    '*.example.com is subdomains only',
  );

  const other = config.domainSettings('unknown.test');
  assert.equal(other.maxSmtpOut, 7);
  assert.deepEqual(other.retryAfter, [300_000]);
  assert.equal(config.domainSettings('legacy.test').routeVia, 'postfix');
});
