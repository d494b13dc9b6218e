/** `freight up | down | reload`. */
import { parseArgs } from 'node:util';
import type { Command } from '../common/command.js';
import { pidFilePath, readLivePid } from '../common/daemon.js';
import { fail } from '../common/output.js';
import { checkConfig, resolveConfigPath } from '../config/load.js';
import type { FreightConfig } from '../config/model.js';
import { masterPid, reloadPostfix, stopPostfix } from '../postfix/instance.js';
import { postfixLayout } from '../postfix/layout.js';
import { renderPostfix } from '../postfix/render.js';
import { signalDaemons } from './signal.js';
import { DAEMONS, runStack } from './supervisor.js';

function loadOrReport(configArg: string | undefined): { path: string; config: FreightConfig } | number {
  const path = resolveConfigPath(configArg);
  const { config, errors, warnings } = checkConfig(path);
  for (const w of warnings) process.stderr.write(`${w}\n`);
  if (!config) {
    for (const e of errors) process.stderr.write(`${e}\n`);
    return fail(`${path}: ${errors.length} error(s); nothing changed`);
  }
  return { path, config };
}

const configOption = { config: { type: 'string', short: 'c' } } as const;

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

export const commands: Command[] = [
  {
    name: 'up',
    summary: 'run the whole stack (private Postfix + every Freight daemon) in the foreground',
    usage: `Usage: freight up [--config FILE]

Renders and starts the private Postfix instance, starts every Freight daemon, prints where each
listens, and stops all of them on Ctrl-C, SIGTERM or \`freight down\`. A daemon that dies is restarted.`,
    async run(argv) {
      const { values } = parseArgs({ args: argv, options: configOption });
      const loaded = loadOrReport(values.config);
      if (typeof loaded === 'number') return loaded;
      const running = readLivePid(pidFilePath(loaded.config.global.runDir, 'up'));
      if (running) {
        return fail(
          `the stack is already running (freight up, pid ${running}); stop it with \`freight down\` first`,
        );
      }
      return runStack(loaded.path, loaded.config);
    },
  },
  {
    name: 'down',
    summary: 'stop a stack started by freight up (and any leftover private Postfix)',
    usage: 'Usage: freight down [--config FILE]',
    async run(argv) {
      const { values } = parseArgs({ args: argv, options: configOption });
      const loaded = loadOrReport(values.config);
      if (typeof loaded === 'number') return loaded;
      const { global } = loaded.config;
      const pid = readLivePid(pidFilePath(global.runDir, 'up'));
      if (pid) {
        process.kill(pid, 'SIGTERM');
        if (!(await waitGone(pid, 60_000))) return fail(`freight up (pid ${pid}) did not stop within 60 s`);
        process.stdout.write(`stopped freight up (pid ${pid})\n`);
      }
      // Daemons or a Postfix left behind by a killed `freight up`.
      let leftovers = 0;
      for (const name of DAEMONS) {
        const dpid = readLivePid(pidFilePath(global.runDir, name));
        if (dpid) {
          process.kill(dpid, 'SIGTERM');
          await waitGone(dpid, 30_000);
          leftovers++;
        }
      }
      const layout = postfixLayout(global.postfixDir);
      if (masterPid(layout)) {
        await stopPostfix(global.postfixCommandDir, layout);
        leftovers++;
      }
      if (!pid && leftovers === 0) process.stdout.write('nothing was running\n');
      return 0;
    },
  },
  {
    name: 'reload',
    summary: 'check the config, re-render Postfix and make every running daemon reload it',
    usage: `Usage: freight reload [--config FILE]

Refuses (and changes nothing) if the config has errors. Otherwise re-renders the private Postfix
config, reloads Postfix if it runs, and sends SIGHUP to every running Freight daemon.`,
    async run(argv) {
      const { values } = parseArgs({ args: argv, options: configOption });
      const loaded = loadOrReport(values.config);
      if (typeof loaded === 'number') return loaded;
      const { global } = loaded.config;
      const layout = postfixLayout(global.postfixDir);
      if (masterPid(layout)) {
        renderPostfix(loaded.config);
        await reloadPostfix(global.postfixCommandDir, layout);
        process.stdout.write('postfix: reloaded\n');
      }
      const signalled = signalDaemons(global.runDir, 'SIGHUP');
      for (const d of signalled) process.stdout.write(`${d.name}: reload requested (pid ${d.pid})\n`);
      if (signalled.length === 0) process.stdout.write('no Freight daemon is running\n');
      return 0;
    },
  },
];
