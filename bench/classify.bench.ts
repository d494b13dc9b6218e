/**
 * Bounce classifier throughput: every reply of the corpus (train, held-out and regression
 * sets; the engine and tailer classify every t, b and rb row) through `classify()` on one thread,
 * repeated until at least --seconds of work; prints classifications/s and the p99 time per reply. The
 * same run measures the regex-list classifier it replaced, its sources and rule file taken from git at
 * BASELINE, on the same replies. Both are transpiled to plain JavaScript the same way (as the build does;
 * tsx's per-function helpers would weigh on the hot path) into a scratch directory. Nothing row-level
 * is printed.
 *
 *   node --import tsx bench/classify.bench.ts [--seconds 3]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { parseArgs } from 'node:util';
import ts from 'typescript';
import { readCorpusSide, readRegressionSet } from '../sidecar/classify/corpus.js';
import { packageRoot } from '../sidecar/common/paths.js';

/** The last commit with the regex-list classifier (first regex wins, then status and reply codes). */
const BASELINE = 'd3f2cf7';
const ENTRY = 'sidecar/classify/classifier.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' } } });
const SECONDS = Number(values.seconds);

interface Classifier {
  classify(reply: string): { category: string };
}

/**
 * Transpile `sources` (path → TypeScript) into `dir` as an ES-module package of its own, with `rules` as
 * its data/bounce-patterns.txt, and load its classifier.
 */
async function loadTranspiled(dir: string, sources: Map<string, string>, rules: string): Promise<Classifier> {
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  for (const [path, source] of sources) {
    const out = join(dir, path.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(out), { recursive: true });
    const js = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    writeFileSync(out, js.outputText);
  }
  mkdirSync(join(dir, 'data'));
  symlinkSync(rules, join(dir, 'data', 'bounce-patterns.txt'));
  const mod = (await import(join(dir, 'sidecar', 'classify', 'classifier.js'))) as {
    BounceClassifier: { load(): Classifier };
  };
  return mod.BounceClassifier.load();
}

/** `entry` and every module it imports by relative path, read through `read` (path → TypeScript). */
function sourcesFrom(entry: string, read: (path: string) => string): Map<string, string> {
  const out = new Map<string, string>();
  const todo = [entry];
  for (let path = todo.pop(); path !== undefined; path = todo.pop()) {
    if (out.has(path)) continue;
    const source = read(path);
    out.set(path, source);
    for (const m of source.matchAll(/from '(\.\.?\/[^']+)\.js'/g))
      todo.push(posix.join(posix.dirname(path), `${m[1]}.ts`));
  }
  return out;
}

function currentSources(): Map<string, string> {
  return sourcesFrom(ENTRY, (f) => readFileSync(join(packageRoot, f), 'utf8'));
}

function baselineSources(dir: string): { sources: Map<string, string>; rules: string } {
  const show = (path: string) =>
    execFileSync('git', ['show', `${BASELINE}:${path}`], { cwd: packageRoot, encoding: 'utf8' });
  const rules = join(dir, 'baseline-bounce-patterns.txt');
  writeFileSync(rules, show('data/bounce-patterns.txt'));
  return { sources: sourcesFrom(ENTRY, show), rules };
}

interface Measure {
  perSecond: number;
  /** Per second of this process's CPU time: what one core does, whatever else the machine runs. */
  perCpuSecond: number;
  p99us: number;
  total: number;
}

function measure(c: Classifier, replies: string[]): Measure {
  // Warm up until the JIT has settled on the hot paths.
  for (let i = 0; i < 5; i++) for (const r of replies) c.classify(r);
  let total = 0;
  let sink = 0;
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(SECONDS * 1e9));
  while (process.hrtime.bigint() - start < budget) {
    for (const r of replies) sink += c.classify(r).category.length;
    total += replies.length;
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  // Per-reply times on separate passes, so the clock reads do not weigh on the throughput figure.
  const times: number[] = [];
  for (let pass = 0; pass < 5; pass++)
    for (const r of replies) {
      const t0 = process.hrtime.bigint();
      sink += c.classify(r).category.length;
      times.push(Number(process.hrtime.bigint() - t0));
    }
  times.sort((a, b) => a - b);
  if (sink === 0) throw new Error('classifier returned nothing');
  return {
    perSecond: total / elapsed,
    perCpuSecond: total / cpuSeconds,
    p99us: times[Math.floor(times.length * 0.99)]! / 1000,
    total,
  };
}

const replies = [
  ...readCorpusSide(packageRoot, 'train'),
  ...readCorpusSide(packageRoot, 'heldout'),
  ...readRegressionSet(packageRoot),
].map((r) => r.reply);
const bytes = replies.reduce((n, r) => n + r.length, 0);
process.stdout.write(
  `corpus: ${replies.length} replies, ${(bytes / replies.length).toFixed(0)} chars on average\n`,
);

const dir = mkdtempSync(join(tmpdir(), 'freight-classify-bench-'));
try {
  mkdirSync(join(dir, 'current'));
  mkdirSync(join(dir, 'baseline'));
  const t0 = process.hrtime.bigint();
  const current = await loadTranspiled(
    join(dir, 'current'),
    currentSources(),
    join(packageRoot, 'data', 'bounce-patterns.txt'),
  );
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const base = baselineSources(dir);
  const baseline = await loadTranspiled(join(dir, 'baseline'), base.sources, base.rules);
  const now = measure(current, replies);
  const old = measure(baseline, replies);
  const line = (name: string, m: Measure) =>
    `${name}: ${Math.round(m.perSecond).toLocaleString('en-US')} classifications/s (${Math.round(m.perCpuSecond).toLocaleString('en-US')} per CPU-second), p99 ${m.p99us.toFixed(1)} µs/reply (${m.total.toLocaleString('en-US')} classified)\n`;
  process.stdout.write(
    `freight classifier (transpiled, rules loaded and compiled in ${loadMs.toFixed(0)} ms)\n`,
  );
  process.stdout.write(line('  current', now));
  process.stdout.write(line(`  baseline ${BASELINE} (regex list)`, old));
  const [load1] = loadavg();
  process.stdout.write(
    `goal ≥200,000 classifications/s: ${now.perSecond >= 200_000 ? 'met' : 'NOT met'} (load average ${load1!.toFixed(1)} on ${availableParallelism()} cores)\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
