#!/usr/bin/env node
// Runs the compiled CLI; in a source checkout without a build, runs the TypeScript through tsx.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/sidecar/cli/main.js', import.meta.url);
if (existsSync(dist)) {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../sidecar/cli/main.ts', import.meta.url).href);
}
