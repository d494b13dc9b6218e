/** Loading freight.conf: find it, parse it, build it; a failure carries every `file:line: reason`. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { FreightError } from '../common/errors.js';
import { liveStacks } from '../common/stack-record.js';
import { buildConfig } from './build.js';
import type { FreightConfig, Origin } from './model.js';
import { type Diagnostic, formatDiagnostic, parseConfigFile } from './syntax.js';

export const DEFAULT_CONFIG_PATHS = ['./freight.conf', '/etc/freight/freight.conf'];

/**
 * The config file to use: the explicit one, else `FREIGHT_CONFIG`, else ./freight.conf, else
 * /etc/freight/freight.conf, else the one a running `freight up` uses (so `freight down` finds the stack
 * `npm run up` started with the example config).
 */
export function resolveConfigPath(explicit?: string): string {
  if (explicit) return resolve(explicit);
  if (process.env.FREIGHT_CONFIG) return resolve(process.env.FREIGHT_CONFIG);
  for (const candidate of DEFAULT_CONFIG_PATHS) if (existsSync(candidate)) return resolve(candidate);
  const stacks = liveStacks();
  if (stacks.length === 1) return stacks[0]!.config;
  if (stacks.length > 1) {
    throw new FreightError(
      'CONFIG_AMBIGUOUS',
      `no config file given and ${stacks.length} stacks are running (${stacks
        .map((s) => `pid ${s.pid}: ${s.config}`)
        .join('; ')}): pass --config FILE`,
    );
  }
  throw new FreightError(
    'CONFIG_NOT_FOUND',
    `no config file: pass --config FILE, set FREIGHT_CONFIG, or create one of ${DEFAULT_CONFIG_PATHS.join(', ')} (no running freight up to take it from)`,
  );
}

/** Thrown when a config cannot be used; `lines` are `file:line: reason`, one per problem. */
export class ConfigError extends FreightError {
  readonly lines: string[];
  constructor(lines: string[]) {
    super('CONFIG_INVALID', lines.join('\n'), { lines });
    this.lines = lines;
  }
}

export interface CheckResult {
  config: FreightConfig | null;
  errors: string[];
  warnings: string[];
  /** Where each global directive's value came from (for `config show`). */
  globalOrigins: Record<string, Origin>;
}

export function checkConfig(path: string): CheckResult {
  const tree = parseConfigFile(path);
  const { config, errors, warnings, globalOrigins } = buildConfig(tree);
  // Report in reading order (file, then line), whichever pass of the builder found the problem.
  const rank = (d: Diagnostic) => {
    const i = tree.files.indexOf(d.file);
    return (i < 0 ? tree.files.length : i) * 1e9 + d.line;
  };
  const ordered = (list: Diagnostic[]) => [...list].sort((a, b) => rank(a) - rank(b)).map(formatDiagnostic);
  return { config, errors: ordered(errors), warnings: ordered(warnings), globalOrigins };
}

export function loadConfig(path: string): FreightConfig {
  const { config, errors } = checkConfig(path);
  if (!config) throw new ConfigError(errors);
  return config;
}
