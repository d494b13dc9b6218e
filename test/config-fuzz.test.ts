/**
 * Property test: random mutations of valid configs never crash the parser; a config is either loaded or
 * refused with errors that each carry file:line.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { GLOBAL_DIRECTIVES } from '../sidecar/config/globals.js';
import { checkConfig } from '../sidecar/config/load.js';
import { DOMAIN_DIRECTIVES } from '../sidecar/config/schema.js';
import { ValueError } from '../sidecar/config/units.js';
import { parseValue } from '../sidecar/config/values.js';

const root = resolve(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'freight-config-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));
cpSync(resolve(root, 'test/fixtures/config'), dir, { recursive: true });

const seeds = [
  readFileSync(resolve(root, 'test/fixtures/config/full.conf'), 'utf8'),
  readFileSync(resolve(root, 'test/fixtures/config/pmta-excerpt.conf'), 'utf8'),
  readFileSync(resolve(root, 'freight.conf.example'), 'utf8'),
];

const fragments = [
  '<domain *>',
  '<domain gmail.com>',
  '</domain>',
  '<virtual-mta x>',
  '</virtual-mta>',
  '<source 10.0.0.0/8>',
  '</source>',
  '<smtp-pattern-list p>',
  '</smtp-pattern-list>',
  '<bounce-category-patterns>',
  '<',
  '>',
  '/',
  '#',
  '"',
  "'",
  ',',
  '=',
  ':',
  '\\',
  '*',
  'include full.conf',
  'include conf.d/*.conf',
  'include ../..',
  'reply /(/ mode=backoff',
  'reply /x/ threshold=5%/10m,min-samples=3',
  '/x/ bad-mailbox',
  'domain-key a,b,c',
  'max-smtp-out 99999999999999999999999',
  'retry-after 1d,,',
  'max-msg-rate 1/0m',
  'bounce-after 1e9w',
  'smtp-listener [::1]:0',
  'virtual-mta-pool marketing',
  '\u0000',
  '\u00e9',
  '\t',
  '\r',
];

type Mutation =
  | { op: 'delete'; at: number }
  | { op: 'duplicate'; at: number }
  | { op: 'swap'; at: number; to: number }
  | { op: 'insert'; at: number; text: string }
  | { op: 'splice'; at: number; pos: number; text: string }
  | { op: 'truncate'; at: number };

const text = fc.oneof(
  fc.constantFrom(...fragments),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('swap' as const), at: fc.nat(), to: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), text }),
  fc.record({ op: fc.constant('splice' as const), at: fc.nat(), pos: fc.nat(), text }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(seed: string, mutations: Mutation[]): string {
  const lines = seed.split('\n');
  for (const m of mutations) {
    const i = lines.length === 0 ? 0 : m.at % lines.length;
    if (m.op === 'delete') lines.splice(i, 1);
    else if (m.op === 'duplicate') lines.splice(i, 0, lines[i] ?? '');
    else if (m.op === 'swap') {
      const j = lines.length === 0 ? 0 : m.to % lines.length;
      [lines[i], lines[j]] = [lines[j] ?? '', lines[i] ?? ''];
    } else if (m.op === 'insert') lines.splice(i, 0, m.text);
    else if (m.op === 'splice') {
      const line = lines[i] ?? '';
      const p = m.pos % (line.length + 1);
      lines[i] = line.slice(0, p) + m.text + line.slice(p);
    } else lines.length = i;
  }
  return lines.join('\n');
}

const located = /^.+:\d+: \S/;
let run = 0;

test('mutated configs load or fail with file:line errors, never a crash', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: seeds.length - 1 }),
      fc.array(mutation, { minLength: 1, maxLength: 6 }),
      (s, muts) => {
        const file = join(dir, `fuzz-${run++ % 8}.conf`);
        writeFileSync(file, mutate(seeds[s]!, muts));
        const result = checkConfig(file);
        for (const line of [...result.errors, ...result.warnings]) assert.match(line, located);
        if (result.config) {
          assert.equal(result.errors.length, 0);
          const settings = result.config.domainSettings('gmail.com');
          assert.ok(Number.isInteger(settings.maxSmtpOut) && settings.maxSmtpOut >= 1);
        } else {
          assert.ok(result.errors.length > 0, 'a refused config says why');
        }
      },
    ),
    { numRuns: 400 },
  );
});

test('value parsers reject any text with a ValueError, nothing else', () => {
  const specs = [...DOMAIN_DIRECTIVES, ...GLOBAL_DIRECTIVES];
  fc.assert(
    fc.property(fc.constantFrom(...specs), fc.string({ maxLength: 24 }), (spec, raw) => {
      try {
        parseValue(spec, raw);
      } catch (err) {
        assert.ok(err instanceof ValueError, `${spec.name} '${raw}' threw ${String(err)}`);
      }
    }),
    { numRuns: 2000 },
  );
});
