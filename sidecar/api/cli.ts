/** `freight api`: the management API and /metrics daemon. */
import { parseArgs } from 'node:util';
import type { Command } from '../common/command.js';
import { runDaemon } from '../common/daemon.js';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { fail } from '../common/output.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { ApiDaemon } from './daemon.js';

const api: Command = {
  name: 'api',
  summary: 'run the management API (status, queues, control, suppression, ramp) and /metrics (daemon)',
  usage: `Usage: freight api [--config FILE]

Serves JSON on http-mgmt-listener (default 127.0.0.1:8190) and Prometheus metrics on /metrics.
Read calls (GET) are allowed from http-read-allow (default 127.0.0.0/8 and ::1) or with the key;
state-changing calls need the header X-API-Key equal to http-api-key, and are refused when no key is
configured. SIGHUP reloads the key and CIDRs; SIGTERM stops.`,
  async run(argv) {
    const log = createLogger('api');
    let configPath: string;
    try {
      const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } }, strict: true });
      configPath = resolveConfigPath(values.config);
    } catch (err) {
      return fail(errorMessage(err), 64);
    }
    let config = loadConfig(configPath);
    let daemon: ApiDaemon | null = null;
    // Claim the pid file first, so a second copy refuses before it binds the listener.
    const stopped = runDaemon('api', config.global.runDir, log, {
      reload: () => {
        const next = loadConfig(configPath);
        daemon?.reload(next);
        config = next;
      },
      stop: async () => daemon?.stop(),
    });
    try {
      daemon = await ApiDaemon.start(config, configPath, log);
    } catch (err) {
      log.error('cannot start', { error: errorMessage(err) });
      // runDaemon releases the pid file only on a stop signal.
      process.kill(process.pid, 'SIGTERM');
      await stopped;
      return 1;
    }
    await stopped;
    return 0;
  },
};

export const commands: Command[] = [api];
