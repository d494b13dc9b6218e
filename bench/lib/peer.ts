/**
 * The peer a benchmark compares against (postfwd2, pflogsumm, Postfix) must be there: a benchmark that
 * quietly drops its comparison prints a number nobody can judge. Missing → a clear error, exit 1.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Absolute path of `tool` (a path, or a name looked up on PATH); throws naming the Debian package. */
export function requirePeer(tool: string, debianPackage: string): string {
  const candidates = tool.includes('/')
    ? [tool]
    : (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, tool));
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {}
  }
  throw new Error(
    `benchmark peer ${tool} is not installed (Debian package ${debianPackage}); ` +
      'scripts/install-postfix.sh installs it — the comparison is part of the result, so the benchmark stops here',
  );
}
