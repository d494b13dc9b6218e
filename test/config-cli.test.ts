/** `freight config check` on the shipped example, and `freight config show` with origins, as an operator runs them. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';

const root = resolve(import.meta.dirname, '..');
const example = resolve(root, 'freight.conf.example');
const freight = (...args: string[]) =>
  spawnSync(process.execPath, [resolve(root, 'bin/freight.js'), ...args], { cwd: root, encoding: 'utf8' });

/** Line number of the first line of the example matching `re` inside the block that starts with `block`. */
function lineOf(block: string, re: RegExp): number {
  const lines = readFileSync(example, 'utf8').split('\n');
  const start = lines.findIndex((l) => l.trim() === block);
  const i = lines.findIndex((l, n) => n > start && re.test(l));
  assert.ok(start >= 0 && i > start, `${block} ${re} in the example`);
  return i + 1;
}

test('freight config check freight.conf.example exits 0 without warnings', () => {
  const res = freight('config', 'check', example);
  assert.equal(res.status, 0, res.stderr);
  assert.equal(res.stderr, '');
  assert.match(res.stdout, /OK \(1 file\(s\), \d+ domain block\(s\), 2 virtual-mta\(s\), 0 warning\(s\)\)/);
});

test('config show --domain --vmta --json: effective values with file:line or default', () => {
  const res = freight(
    'config',
    'show',
    '--config',
    example,
    '--domain',
    'gmail.com',
    '--vmta',
    'mta2',
    '--json',
  );
  assert.equal(res.status, 0, res.stderr);
  const { domain, vmta, directives } = JSON.parse(res.stdout);
  assert.equal(domain, 'gmail.com');
  assert.equal(vmta, 'mta2');
  assert.deepEqual(directives['max-smtp-out'], {
    value: 5,
    text: '5',
    origin: `freight.conf.example:${lineOf('<virtual-mta mta2>', /max-smtp-out/)}`,
  });
  assert.deepEqual(directives['max-msg-rate'], {
    value: { count: 3500, perMs: 3_600_000 },
    text: '3500/h',
    origin: `freight.conf.example:${lineOf('<domain gmail.com>', /max-msg-rate/)}`,
  });
  assert.equal(
    directives['virtual-mta-pool'].origin,
    `freight.conf.example:${lineOf('<domain *>', /virtual-mta-pool/)}`,
  );
  assert.deepEqual(directives['max-rcpt-per-message'], { value: 10, text: '10', origin: 'default' });

  const table = freight('config', 'show', '--config', example, '--domain', 'gmail.com');
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /^max-smtp-out\s+10\s+freight\.conf\.example:\d+$/m);
  assert.match(table.stdout, /^retry-after\s+15m,30m,1h\s+freight\.conf\.example:\d+$/m);
  assert.match(table.stdout, /^connection-idle-timeout\s+30s\s+default$/m);
});

test('config show without --domain prints the globals; a bad --vmta is an error, not a trace', () => {
  const res = freight('config', 'show', '--config', example);
  assert.equal(res.status, 0, res.stderr);
  assert.match(res.stdout, /^smtp-listener\s+127\.0\.0\.1:2526\s+freight\.conf\.example:\d+$/m);
  assert.match(res.stdout, /^remote-smtp-port\s+25\s+default$/m);
  const bad = freight('config', 'show', '--config', example, '--domain', 'gmail.com', '--vmta', 'nope');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^freight: no <virtual-mta nope>/);
});
