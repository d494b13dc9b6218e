/** `freight config check [FILE]` and `freight config show [--domain D [--vmta V]] [--json]`. */
import { parseArgs } from 'node:util';
import type { Command } from '../common/command.js';
import { errorMessage } from '../common/errors.js';
import { fail, formatTable, printJson } from '../common/output.js';
import { checkConfig, resolveConfigPath } from './load.js';
import { domainSettingRows, globalSettingRows, type ShownSetting } from './show.js';

function parse(argv: string[], extra: Record<string, { type: 'string' | 'boolean' }>) {
  return parseArgs({
    args: argv,
    options: { config: { type: 'string' }, json: { type: 'boolean' }, ...extra },
    allowPositionals: true,
    strict: true,
  });
}

const check: Command = {
  name: 'config check',
  summary: 'validate freight.conf and every included file',
  usage: `Usage: freight config check [FILE] [--config FILE]

Parses the configuration and reports every problem as 'file:line: reason' on stderr.
Warnings (e.g. PowerMTA directives Freight ignores) do not fail the check.
Exit status: 0 valid, 1 invalid.`,
  async run(argv) {
    let path: string;
    try {
      const { values, positionals } = parse(argv, {});
      if (positionals.length > 1) return fail('config check takes at most one FILE', 64);
      path = resolveConfigPath(positionals[0] ?? values.config);
    } catch (err) {
      return fail(errorMessage(err), 64);
    }
    const result = checkConfig(path);
    for (const w of result.warnings)
      process.stderr.write(`${w.replace(/^([^:]+:\d+): /, '$1: warning: ')}\n`);
    for (const e of result.errors) process.stderr.write(`${e}\n`);
    if (!result.config) {
      process.stderr.write(`freight: ${path}: ${result.errors.length} error(s)\n`);
      return 1;
    }
    const c = result.config;
    process.stdout.write(
      `${path}: OK (${c.files.length} file(s), ${c.domains.length} domain block(s), ` +
        `${c.virtualMtas.size} virtual-mta(s), ${result.warnings.length} warning(s))\n`,
    );
    return 0;
  },
};

const show: Command = {
  name: 'config show',
  summary: 'print effective settings (global, or for a domain and virtual MTA) with their origin',
  usage: `Usage: freight config show [--domain DOMAIN [--vmta NAME]] [--json] [--config FILE]

Without --domain: the global settings. With --domain: the effective settings for that destination,
resolved as defaults <- <domain *> <- most specific <domain> <- the virtual MTA's nested <domain>.
Each value is shown with its origin: file:line, or 'default'.`,
  async run(argv) {
    let opts: { domain?: string; vmta?: string; json?: boolean; config?: string };
    try {
      const { values, positionals } = parse(argv, { domain: { type: 'string' }, vmta: { type: 'string' } });
      if (positionals.length > 0) return fail(`unexpected argument '${positionals[0]}'`, 64);
      opts = values;
    } catch (err) {
      return fail(errorMessage(err), 64);
    }
    if (opts.vmta && !opts.domain) return fail('--vmta needs --domain', 64);
    const path = resolveConfigPath(opts.config);
    const result = checkConfig(path);
    if (!result.config) {
      for (const e of result.errors) process.stderr.write(`${e}\n`);
      return 1;
    }
    const config = result.config;
    let rows: ShownSetting[];
    if (opts.domain) {
      if (opts.vmta && !config.virtualMtas.has(opts.vmta))
        return fail(`no <virtual-mta ${opts.vmta}> in ${path}`);
      rows = domainSettingRows(config, opts.domain, opts.vmta);
    } else {
      rows = globalSettingRows(config, result.globalOrigins);
    }
    if (opts.json) {
      const directives = Object.fromEntries(
        rows.map((r) => [r.directive, { value: r.value, text: r.text, origin: r.origin }]),
      );
      printJson(opts.domain ? { domain: opts.domain, vmta: opts.vmta ?? null, directives } : { directives });
    } else {
      process.stdout.write(
        formatTable(
          rows.map((r) => ({ directive: r.directive, value: r.text, origin: r.origin })),
          ['directive', 'value', 'origin'],
        ),
      );
    }
    return 0;
  },
};

export const commands: Command[] = [check, show];
