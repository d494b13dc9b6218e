/**
 * The sidecar compiled the way `npm run build` does, into a scratch directory, so a benchmark measures
 * what production runs (`bin/freight.js` runs `dist/`) and never a stale `dist/`. Returns the CLI's entry
 * point.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function buildSidecar(dir: string): string {
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const args = [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', dir, '--sourceMap', 'false'];
  const built = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
  const main = join(dir, 'sidecar/cli/main.js');
  if (!existsSync(main)) throw new Error(`tsc built no ${main}:\n${built.stdout}${built.stderr}`);
  // Type errors elsewhere in a tree being worked on still leave runnable JavaScript.
  if (built.status !== 0)
    process.stderr.write(`tsc reported errors; running its output anyway:\n${built.stdout}`);
  // What the build needs from the package root (found by its package.json).
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  for (const d of ['node_modules', 'data']) symlinkSync(join(ROOT, d), join(dir, d));
  return main;
}
