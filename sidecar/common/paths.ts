/** Package root, the same whether running from sidecar/ under tsx or from dist/sidecar/ after a build. */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(resolve(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('freight: cannot find the package root');
    dir = parent;
  }
  return dir;
}

export const packageRoot: string = findRoot();
