/** `freight postfix render | check`. */
import { parseArgs } from 'node:util';
import type { Command } from '../common/command.js';
import { fail } from '../common/output.js';
import { checkConfig, resolveConfigPath } from '../config/load.js';
import { checkPostfix } from './instance.js';
import { renderPostfix } from './render.js';

const options = { config: { type: 'string', short: 'c' }, out: { type: 'string' } } as const;

function load(configArg: string | undefined) {
  const path = resolveConfigPath(configArg);
  const { config, errors } = checkConfig(path);
  if (!config) for (const e of errors) process.stderr.write(`${e}\n`);
  return config;
}

export const commands: Command[] = [
  {
    name: 'postfix render',
    summary: 'render main.cf, master.cf and transport tables for the private Postfix instance',
    usage: `Usage: freight postfix render [--config FILE] [--out DIR]

Writes DIR/etc/{main.cf,master.cf,transport} (DIR defaults to postfix-dir) and creates the
instance's queue, data and log directories.`,
    async run(argv) {
      const { values } = parseArgs({ args: argv, options });
      const config = load(values.config);
      if (!config) return fail('config has errors; nothing rendered');
      const { files } = renderPostfix(config, values.out ? { outDir: values.out } : {});
      for (const f of files) process.stdout.write(`${f}\n`);
      return 0;
    },
  },
  {
    name: 'postfix check',
    summary: 'render, then run `postfix check` on the private instance and print its complaints',
    usage: 'Usage: freight postfix check [--config FILE] [--out DIR]',
    async run(argv) {
      const { values } = parseArgs({ args: argv, options });
      const config = load(values.config);
      if (!config) return fail('config has errors');
      const { layout } = renderPostfix(config, values.out ? { outDir: values.out } : {});
      const problems = await checkPostfix(config.global.postfixCommandDir, layout);
      for (const p of problems) process.stderr.write(`${p}\n`);
      if (problems.length > 0) return fail(`postfix check: ${problems.length} problem(s)`);
      process.stdout.write(`postfix check: ok (${layout.configDir})\n`);
      return 0;
    },
  },
];
