/**
 * `freight ramp render`: the static randmap form of the split, checked by Postfix's own lookup code
 * (postmap) rather than by reading our text back: the domain's lookups land on the engine at about the
 * share, other domains are not matched, and 0 % / 100 % need no randmap at all.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { domainTable, renderRandmap } from '../sidecar/ramp/render-randmap.js';

const ENGINE = 'freight:inet:127.0.0.1:2526';
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'freight-randmap-'));
  writeFileSync(join(dir, 'main.cf'), 'compatibility_level = 3.6\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** postmap -q - TABLE with `keys` on stdin → the value of each found key, in order. */
function postmapValues(table: string, keys: string[]): string[] {
  // postmap exits 1 when no key was found; anything else is a failure.
  const r = spawnSync('postmap', ['-c', dir, '-q', '-', table], { input: `${keys.join('\n')}\n` });
  assert.ok(r.status === 0 || r.status === 1, `postmap failed: ${r.stderr}`);
  return r.stdout
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t')[1]!);
}

test('a 10 % randmap sends about 10 % of lookups to the engine, through real Postfix lookup code', () => {
  const table = domainTable('example.com', 10, ENGINE, 'smtp:')!;
  const values = postmapValues(
    table,
    Array.from({ length: 3000 }, () => 'example.com'),
  );
  assert.equal(values.length, 3000);
  assert.deepEqual([...new Set(values)].sort(), [ENGINE, 'smtp:'].sort());
  const engine = values.filter((v) => v === ENGINE).length;
  // Binomial(3000, 0.1): sd ≈ 16; ±80 is five sd.
  assert.ok(Math.abs(engine - 300) < 80, `engine ${engine} of 3000`);
  assert.deepEqual(postmapValues(table, ['example.org', 'sub.example.com']), []);
});

test('0 % renders nothing, 100 % a plain inline entry; fractional shares are rounded and reported', () => {
  assert.equal(domainTable('example.com', 0, ENGINE, 'smtp:'), null);
  const full = domainTable('example.com', 100, ENGINE, 'smtp:')!;
  assert.deepEqual(postmapValues(full, ['example.com', 'example.com']), [ENGINE, ENGINE]);
  const r = renderRandmap(
    [
      { domain: 'a.example', percent: 12.5, changedAt: 1 },
      { domain: 'b.example', percent: 0, changedAt: 1 },
      { domain: 'c.example', percent: 25, changedAt: 1 },
    ],
    { engineTransport: ENGINE, fallbackMaps: ['texthash:/etc/postfix/transport'] },
  );
  assert.deepEqual(r.rounded, [{ domain: 'a.example', percent: 12.5, used: 13 }]);
  assert.match(r.text, /NOT sticky/);
  const value = /^transport_maps =\n([\s\S]*)$/m
    .exec(r.text)![1]!
    .replace(/\s*\n\s*/g, ' ')
    .trim();
  // c.example at 25 % reduces to 1 engine entry in 4; b.example at 0 % is left to the static table.
  assert.match(
    value,
    /pipemap:\{inline:\{c\.example=ramp\}, randmap:\{freight:inet:127\.0\.0\.1:2526, smtp:, smtp:, smtp:\}\}/,
  );
  assert.doesNotMatch(value, /b\.example/);
  assert.match(value, /, texthash:\/etc\/postfix\/transport$/);
  // The whole value is one valid transport_maps list to Postfix.
  writeFileSync(join(dir, 'main.cf'), `compatibility_level = 3.6\ntransport_maps = ${value}\n`);
  const shown = execFileSync('postconf', ['-c', dir, '-h', 'transport_maps']).toString().trim();
  assert.equal(shown, value);
});
