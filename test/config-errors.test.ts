/**
 * `freight config check`: each class of bad input is reported as `file:line: reason`, with a non-zero exit
 * and never a stack trace; all problems are reported in one run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { checkConfig } from '../sidecar/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'freight-config-errors-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const freight = resolve(import.meta.dirname, '../bin/freight.js');

let n = 0;
function write(text: string, name = `c${++n}.conf`): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The config must fail with exactly one error, at `line` of `file`, matching `reason`. */
function expectError(text: string, line: number, reason: RegExp): void {
  const file = write(text);
  const { config, errors } = checkConfig(file);
  assert.equal(config, null, `expected ${file} to be refused`);
  assert.equal(errors.length, 1, `expected one error, got:\n${errors.join('\n')}`);
  assert.ok(errors[0]!.startsWith(`${file}:${line}: `), errors[0]);
  assert.match(errors[0]!, reason);
}

test('unknown directive, with a did-you-mean', () => {
  expectError(
    '<domain gmail.com>\n  max-smtp-outt 10\n</domain>\n',
    2,
    /unknown directive 'max-smtp-outt'.*did you mean 'max-smtp-out'/,
  );
  expectError('spool-dri /var/spool\n', 1, /did you mean 'spool-dir'/);
  expectError('<domian x.com>\n</domian>\n', 1, /unknown block <domian> \(did you mean 'domain'\?\)/);
  expectError('max-smtp-out 5\n', 1, /belongs inside a <domain> block/);
});

test('wrong value type or unit', () => {
  expectError('<domain a.com>\n max-smtp-out ten\n</domain>\n', 2, /max-smtp-out: invalid number 'ten'/);
  expectError('<domain a.com>\n retry-after 15m,2x\n</domain>\n', 2, /invalid duration '2x'/);
  expectError('<domain a.com>\n max-msg-rate 3500/y\n</domain>\n', 2, /invalid rate/);
  expectError('<domain a.com>\n dkim-sign maybe\n</domain>\n', 2, /invalid boolean/);
  expectError('<domain a.com>\n route-via smtp\n</domain>\n', 2, /must be one of engine, postfix/);
  expectError('smtp-listener 127.0.0.1\n', 1, /expected host:port/);
  expectError('<source 10.0.0.0/33>\n</source>\n', 1, /invalid <source> address '10.0.0.0\/33'/);
  expectError(
    '<virtual-mta v1>\n smtp-source-host mta1.example 192.0.2.1\n</virtual-mta>\n',
    2,
    /not an IP address/,
  );
});

test('references to undefined pools, vmtas, pattern lists and key files', () => {
  expectError('<domain a.com>\n virtual-mta-pool pol\n</domain>\n', 2, /undefined virtual-mta-pool 'pol'/);
  expectError('<domain a.com>\n virtual-mta nope\n</domain>\n', 2, /undefined virtual-mta 'nope'/);
  expectError(
    '<virtual-mta-pool p>\n virtual-mta ghost\n</virtual-mta-pool>\n',
    1,
    /undefined virtual-mta 'ghost'/,
  );
  expectError('<domain a.com>\n smtp-pattern-list isp\n</domain>\n', 2, /undefined smtp-pattern-list 'isp'/);
  expectError('\n\ndomain-key s1,a.com,keys/missing.pem\n', 3, /key file .*missing\.pem does not exist/);
});

test('duplicate blocks, top level and nested', () => {
  expectError(
    '<domain a.com>\n</domain>\n<domain A.com>\n</domain>\n',
    3,
    /duplicate <domain a\.com> \(first at .*:1\)/,
  );
  expectError(
    '<virtual-mta v>\n smtp-source-host 192.0.2.1 v.example\n</virtual-mta>\n<virtual-mta v>\n smtp-source-host 192.0.2.2 w.example\n</virtual-mta>\n',
    4,
    /duplicate <virtual-mta v>/,
  );
  expectError(
    '<virtual-mta v>\n smtp-source-host 192.0.2.1 v.example\n <domain b.com>\n </domain>\n <domain b.com>\n </domain>\n</virtual-mta>\n',
    5,
    /duplicate <domain b\.com>/,
  );
  expectError('<domain a.com>\n max-smtp-out 1\n max-smtp-out 2\n</domain>\n', 3, /duplicate max-smtp-out/);
});

test('invalid regex and bad pattern actions', () => {
  expectError(
    '<smtp-pattern-list p>\n reply /([a-z/ mode=backoff\n</smtp-pattern-list>\n',
    2,
    /invalid regex/,
  );
  expectError(
    '<smtp-pattern-list p>\n reply /x/ mode=fast\n</smtp-pattern-list>\n',
    2,
    /mode must be backoff or normal/,
  );
  expectError(
    '<bounce-category-patterns>\n /full/ quota-issue\n</bounce-category-patterns>\n',
    2,
    /did you mean 'quota-issues'/,
  );
});

test('include cycle and missing include', () => {
  const a = join(dir, 'cycle-a.conf');
  write('include cycle-b.conf\n', 'cycle-a.conf');
  write('host-name x.example\n\ninclude cycle-a.conf\n', 'cycle-b.conf');
  const { errors } = checkConfig(a);
  assert.deepEqual(errors, [
    `${join(dir, 'cycle-b.conf')}:3: include cycle: cycle-a.conf -> cycle-b.conf -> cycle-a.conf`,
  ]);
  expectError('\ninclude nothing-here.conf\n', 2, /include: no such file/);
});

test('syntax: unclosed and mismatched blocks', () => {
  expectError('<domain a.com>\n max-smtp-out 1\n', 1, /<domain> is never closed/);
  expectError('<domain a.com>\n</source>\n</domain>\n', 2, /unexpected <\/source>, expected <\/domain>/);
});

test('every error is reported in one run, via the CLI, with a non-zero exit and no stack trace', () => {
  const file = write(
    [
      'host-nam x', //                       1 unknown directive
      '<domain a.com>', //                   2
      '  max-smtp-out lots', //              3 wrong type
      '  virtual-mta-pool nope', //          4 undefined pool
      '</domain>', //                        5
      '<smtp-pattern-list p>', //            6
      '  reply /(/ mode=backoff', //         7 invalid regex
      '</smtp-pattern-list>', //             8
    ].join('\n'),
  );
  const res = spawnSync(process.execPath, [freight, 'config', 'check', file], { encoding: 'utf8' });
  assert.equal(res.status, 1, res.stderr);
  const lines = res.stderr.trim().split('\n');
  assert.deepEqual(
    lines.slice(0, -1).map((l) => l.slice(file.length + 1).split(':')[0]),
    ['1', '3', '4', '7'],
    res.stderr,
  );
  assert.match(lines.at(-1)!, /4 error\(s\)/);
  assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace');

  const missing = spawnSync(process.execPath, [freight, 'config', 'check', join(dir, 'absent.conf')], {
    encoding: 'utf8',
  });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /absent\.conf:0: cannot read .*ENOENT/);
});
