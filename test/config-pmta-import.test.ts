/**
 * An existing PowerMTA config carries over: supported directives load with their meaning, and PowerMTA
 * directives Freight does not support yet give a "not supported … ignored" warning with file:line.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { checkConfig } from '../sidecar/config/load.js';

const file = resolve(import.meta.dirname, 'fixtures/config/pmta-excerpt.conf');

test('a PowerMTA config excerpt loads, with warnings for what Freight ignores', () => {
  const { config, errors, warnings } = checkConfig(file);
  assert.deepEqual(errors, []);
  assert.ok(config);

  assert.equal(config.global.postmaster, 'abuse@sender.example');
  assert.deepEqual(
    config.sources.map((s) => [s.cidr, s.alwaysAllowRelaying, s.processXVirtualMta, s.jobidHeader]),
    [
      ['127.0.0.1', true, true, 'X-Mailer-Job'],
      ['0/0', false, false, null],
    ],
  );
  assert.deepEqual(config.pools.get('pool-a')?.members, ['vmta-1', 'vmta-2']);
  assert.equal(config.virtualMtas.get('vmta-1')?.sourceIp, '198.51.100.21');
  assert.equal(config.domainKeys[0]?.selector, 'dkim1');
  assert.equal(config.patternLists.get('common-errors')?.patterns.length, 4, 'the host pattern is skipped');

  const gmail = config.domainSettings('gmail.com');
  assert.equal(gmail.maxSmtpOut, 20);
  assert.deepEqual(gmail.maxMsgRate, { count: 5000, perMs: 3_600_000 });
  assert.deepEqual(gmail.retryAfter, [300_000, 600_000, 1_200_000]);
  assert.deepEqual(gmail.backoffRetryAfter, [1_200_000]);
  assert.equal(gmail.backoffToNormalAfter, 7_200_000);
  assert.equal(gmail.smtpPatternList, 'common-errors', 'inherited from <domain *>');
  assert.equal(gmail.bounceAfter, 4.5 * 86_400_000);
  assert.equal(config.domainSettings('hotmail.com').smtp421MeansMxUnavailable, true);
  assert.equal(config.domainSettings('yahoo.com', 'vmta-1').maxSmtpOut, 4);

  const expected: [number, RegExp][] = [
    [4, /PowerMTA directive 'http-mgmt-port' is not supported by Freight yet; ignored/],
    [5, /'http-access'/],
    [6, /'run-as-root'/],
    [7, /'log-file'/],
    [9, /PowerMTA block <spool> is not supported by Freight yet; ignored/],
    [13, /block <acct-file>/],
    [21, /'smtp-service'/],
    [23, /'default-virtual-mta'/],
    [25, /'add-received-header'/],
    [28, /'log-connections'/],
    [29, /'log-commands'/],
    [39, /'host' patterns are not supported/],
    [46, /'dk-sign'/],
    [61, /'log-transfer-failures'/],
    [71, /'max-errors-per-connection'/],
    [77, /'dkim-algorithm'/],
    [88, /domain macro <domain \{yahoo-domains\}> is not supported/],
  ];
  assert.equal(warnings.length, expected.length, warnings.join('\n'));
  expected.forEach(([line, re], i) => {
    assert.ok(warnings[i]!.startsWith(`${file}:${line}: `), warnings[i]);
    assert.match(warnings[i]!, re);
  });
});
