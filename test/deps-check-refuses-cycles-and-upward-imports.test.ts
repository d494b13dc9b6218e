/**
 * The dependency check (`npm run deps:check`, run by `npm test`) refuses what it is there to refuse: a
 * cycle, an import from a lower layer into a higher one, the API reaching past the engine's control
 * protocol and client, the product importing its harness, and the harness or a benchmark importing a test. It runs the
 * project's own rules on a small tree made for the purpose.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const root = join(import.meta.dirname, '..');
const depcruise = join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

/** Each file imports the files it names (each exports one constant, so every import is used). */
const TREE: Record<string, string[]> = {
  'sidecar/common/log.ts': [],
  'sidecar/common/upward.ts': ['../engine/control/server.js'],
  'sidecar/engine/control/protocol.ts': ['../../common/log.js'],
  'sidecar/engine/control/client.ts': ['./protocol.js'],
  'sidecar/engine/control/server.ts': ['./protocol.js'],
  'sidecar/engine/spool/spool.ts': [],
  'sidecar/api/clients.ts': ['../engine/control/client.js', '../engine/control/protocol.js'],
  'sidecar/api/internals.ts': ['../engine/spool/spool.js'],
  'sidecar/ramp/state.ts': ['./server.js'],
  'sidecar/ramp/server.ts': ['./state.js'],
  'sidecar/policy/uses-harness.ts': ['../../harness/sink.js'],
  'harness/sink.ts': ['../sidecar/common/log.js'],
  'harness/uses-test.ts': ['../test/some.test.js'],
  'test/some.test.ts': ['../harness/sink.js', '../sidecar/api/clients.js'],
  'bench/load.bench.ts': ['../test/some.test.js'],
};

function writeTree(dir: string): void {
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext' } }));
  for (const [file, imports] of Object.entries(TREE)) {
    mkdirSync(join(dir, dirname(file)), { recursive: true });
    const lines = imports.map((p, i) => `import { value as v${i} } from '${p}';`);
    const used = imports.map((_, i) => `v${i}`).join(', ');
    writeFileSync(join(dir, file), `${lines.join('\n')}\nexport const value = [${used}];\n`);
  }
}

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

test('the dependency check refuses cycles, upward imports, engine internals in the API and imports of tests', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'freight-deps-check-'));
  try {
    writeTree(dir);
    const config = join(root, '.dependency-cruiser.cjs');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [depcruise, '--config', config, '--output-type', 'json', 'sidecar', 'harness', 'test', 'bench'],
      { cwd: dir, maxBuffer: 16 * 1024 * 1024 },
    );
    const { summary } = JSON.parse(stdout) as { summary: { violations: Violation[] } };
    const found = summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
    assert.deepEqual(found, [
      'api-engine-control-only: sidecar/api/internals.ts → sidecar/engine/spool/spool.ts',
      'benches-not-tests: bench/load.bench.ts → test/some.test.ts',
      'harness-not-tests-or-benches: harness/uses-test.ts → test/some.test.ts',
      'layer-common: sidecar/common/upward.ts → sidecar/engine/control/server.ts',
      'no-circular: sidecar/ramp/server.ts → sidecar/ramp/state.ts',
      'sidecar-not-tests: sidecar/policy/uses-harness.ts → harness/sink.ts',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
