import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BounceClassifier } from '../sidecar/classify/classifier.js';
import { packageRoot } from '../sidecar/common/paths.js';

const corpus = readFileSync(join(packageRoot, 'data', 'bounce-corpus.tsv'), 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '' && !l.startsWith('#'))
  .map((l) => {
    const [expected, reply, source] = l.split('\t');
    return { expected: expected!, reply: reply!, source: source! };
  });

test('corpus: ≥150 real replies with sources, ≥95% agreement, no 4xx called hard', () => {
  assert.ok(corpus.length >= 150, `corpus has ${corpus.length} replies`);
  const c = BounceClassifier.load();
  let agree = 0;
  const misses: string[] = [];
  for (const { expected, reply, source } of corpus) {
    assert.match(source, /^https?:\/\//, `no source for ${reply}`);
    const got = c.classify(reply);
    if (got.category === expected) agree++;
    else misses.push(`${expected} → ${got.category}: ${reply}`);
    if (/^(?:\D*?\s)?4\d\d[ -]/.test(reply) || /^4\d\d\b/.test(reply))
      assert.equal(got.hard, false, `4xx called hard: ${reply}`);
  }
  const rate = agree / corpus.length;
  process.stdout.write(`# corpus agreement ${agree}/${corpus.length} = ${(rate * 100).toFixed(1)}%\n`);
  assert.ok(rate >= 0.95, `agreement ${(rate * 100).toFixed(1)}%; misses:\n${misses.join('\n')}`);
});

test('freight classify (CLI) agrees with the corpus through stdin', () => {
  const script = `import { commands } from ${JSON.stringify(join(packageRoot, 'sidecar/classify/cli.ts'))}; process.exitCode = await commands[0].run(['--json']);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    input: corpus.map((x) => x.reply).join('\n') + '\n',
    encoding: 'utf8',
    cwd: packageRoot,
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Array<{ category: string; hard: boolean }>;
  assert.equal(out.length, corpus.length);
  const agree = out.filter((o, i) => o.category === corpus[i]!.expected).length;
  assert.ok(agree / corpus.length >= 0.95);
});
