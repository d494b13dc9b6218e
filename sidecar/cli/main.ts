#!/usr/bin/env node
import type { Command } from '../common/command.js';
/** `freight`: one binary, a subcommand per daemon and tool, so each daemon can run as its own service. */
import { isFreightError } from '../common/errors.js';
import { COMMAND_MODULES } from './commands.js';

function words(argv: string[]): string[] {
  const out: string[] = [];
  for (const a of argv) {
    if (a.startsWith('-')) break;
    out.push(a);
  }
  return out;
}

async function allCommands(): Promise<Command[]> {
  const mods = await Promise.all(COMMAND_MODULES.map((m) => m.load()));
  return mods.flatMap((m) => m.commands).sort((a, b) => a.name.localeCompare(b.name));
}

async function printHelp(prefix: string[]): Promise<void> {
  const cmds = (await allCommands()).filter((c) => prefix.every((w, i) => c.name.split(' ')[i] === w));
  const width = Math.max(...cmds.map((c) => c.name.length));
  process.stdout.write(
    'Usage: freight <command> [options]   (every command takes --config FILE; --help for details)\n\n',
  );
  for (const c of cmds) process.stdout.write(`  ${c.name.padEnd(width)}  ${c.summary}\n`);
}

export async function main(argv: string[]): Promise<number> {
  const given = words(argv);
  let best: { name: string; mod: (typeof COMMAND_MODULES)[number] } | null = null;
  for (const mod of COMMAND_MODULES) {
    for (const name of mod.names) {
      const parts = name.split(' ');
      if (parts.every((w, i) => given[i] === w) && (!best || parts.length > best.name.split(' ').length)) {
        best = { name, mod };
      }
    }
  }
  if (!best) {
    if (given.length > 0 && !argv.includes('--help') && !argv.includes('-h')) {
      const known = COMMAND_MODULES.flatMap((m) => m.names).some((n) => n.startsWith(`${given.join(' ')} `));
      if (!known) {
        process.stderr.write(`freight: unknown command '${given.join(' ')}' (see freight --help)\n`);
        return 64;
      }
    }
    await printHelp(given);
    return given.length === 0 && argv.length === 0 ? 64 : 0;
  }
  const { commands } = await best.mod.load();
  const cmd = commands.find((c) => c.name === best.name);
  if (!cmd) throw new Error(`command module for '${best.name}' does not export it`);
  const rest = argv.slice(best.name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${cmd.usage.trimEnd()}\n`);
    return 0;
  }
  return cmd.run(rest);
}

function report(err: unknown): number {
  if (isFreightError(err)) {
    process.stderr.write(`freight: ${err.message}\n`);
    return 1;
  }
  if (process.env.FREIGHT_DEBUG) console.error(err);
  else process.stderr.write(`freight: ${err instanceof Error ? err.message : String(err)}\n`);
  return 70;
}

// `freight acct list | head`: a closed pipe ends the output quietly, as with any Unix tool.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.exitCode = report(err);
  },
);
