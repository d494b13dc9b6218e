/** `freight ramp` (the socketmap daemon), `ramp set`, `ramp show`, `ramp render`. */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from '../common/command.js';
import { runDaemon } from '../common/daemon.js';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { fail, printJson, printRows } from '../common/output.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { FreightConfig } from '../config/model.js';
import { postfixLayout } from '../postfix/layout.js';
import { engineTransportOf, RampDaemon } from './daemon.js';
import { renderRandmap } from './render-randmap.js';
import { parseRampDomain, parseRampPercent, RampState, rampReport } from './state.js';

function withState<T>(config: FreightConfig, fn: (state: RampState) => T): T {
  const state = RampState.open(config.global.acctDb);
  try {
    return fn(state);
  } finally {
    state.close();
  }
}

const RULE =
  'A recipient goes to the engine iff a stable hash of its address, in [0,100), is under the share: the\n' +
  'same answer at smtpd and at every retry, raising a share only moves recipients postfix → engine and\n' +
  'lowering it only engine → postfix. A recipient already handed to the engine stays there (Postfix\n' +
  'counts the hand-off as delivered); one still deferred in Postfix takes the path of the current share.';

export const commands: Command[] = [
  {
    name: 'ramp',
    summary: 'socketmap server for transport_maps that sends a share of each domain to the engine (daemon)',
    usage:
      'freight ramp [--config FILE]\n\nListens on ramp-listener for Postfix socketmap lookups (transport_maps gets\n' +
      '`socketmap:inet:HOST:PORT:transport` first when `ramp-enabled yes`). Answers the engine transport\n' +
      '(ramp-engine-transport, default freight:inet:<smtp-listener>) for the ramped share of a domain and\n' +
      'NOTFOUND for the rest, so Postfix’s own transports apply.\n\n' +
      RULE +
      '\n\nSIGHUP reloads, SIGTERM stops. If the ramp is down, Postfix defers (never misroutes).',
    async run(argv) {
      const log = createLogger('ramp');
      let configPath: string;
      let config: FreightConfig;
      let daemon: RampDaemon;
      try {
        const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
        configPath = resolveConfigPath(values.config);
        config = loadConfig(configPath);
        daemon = await RampDaemon.start(config, { log });
      } catch (err) {
        return fail(errorMessage(err));
      }
      await runDaemon('ramp', config.global.runDir, log, {
        reload: () => {
          const next = loadConfig(configPath);
          daemon.reload(next, config);
          config = next;
        },
        stop: () => daemon.stop(),
      });
      return 0;
    },
  },
  {
    name: 'ramp set',
    summary: 'send PERCENT of a domain’s recipients to the engine (takes effect within a second)',
    usage:
      'freight ramp set <domain> <percent|off> [--config FILE] [--json]\n\n' +
      'PERCENT is 0..100 with up to two decimals. `off` forgets the domain (Postfix’s own transports apply\n' +
      'to all of it). Stored in acct-db, so it survives restarts; a running `freight ramp` picks it up\n' +
      'without a Postfix reload.\n\n' +
      RULE,
    async run(argv) {
      try {
        const { values, positionals } = parseArgs({
          args: argv,
          options: { config: { type: 'string' }, json: { type: 'boolean', default: false } },
          allowPositionals: true,
        });
        if (positionals.length !== 2) return fail('usage: freight ramp set <domain> <percent|off>', 64);
        const domain = parseRampDomain(positionals[0]!);
        const off = positionals[1]!.toLowerCase() === 'off';
        const percent = off ? null : parseRampPercent(positionals[1]!);
        const config = loadConfig(resolveConfigPath(values.config));
        const result = withState(config, (state) => {
          const before = state.shares().find((s) => s.domain === domain)?.percent ?? null;
          if (percent === null) state.removeShare(domain);
          else state.setShare(domain, percent);
          return { domain, before, percent };
        });
        if (values.json) printJson(result);
        else {
          const was = result.before === null ? 'not ramped' : `${result.before}%`;
          const now = percent === null ? 'not ramped' : `${percent}% to the engine`;
          process.stdout.write(`${domain}: ${now} (was ${was})\n`);
        }
        return 0;
      } catch (err) {
        return fail(errorMessage(err));
      }
    },
  },
  {
    name: 'ramp show',
    summary: 'each ramped domain’s share and the measured split since the share was set',
    usage:
      'freight ramp show [--config FILE] [--json]\n\n' +
      'engine/postfix count distinct recipients the ramp answered since the current share was set\n' +
      '(written by the running `freight ramp` every second); measured = engine / (engine + postfix).',
    async run(argv) {
      try {
        const { values } = parseArgs({
          args: argv,
          options: { config: { type: 'string' }, json: { type: 'boolean', default: false } },
        });
        const config = loadConfig(resolveConfigPath(values.config));
        const rows = withState(config, rampReport);
        printRows(rows, { json: values.json === true });
        return 0;
      } catch (err) {
        return fail(errorMessage(err));
      }
    },
  },
  {
    name: 'ramp render',
    summary:
      'Render the ramp shares as a static randmap transport_maps (not sticky; for shops without socketmap)',
    usage:
      'freight ramp render [--config FILE] [--out DIR] [--postfix-transport T]\n\n' +
      'Prints (or writes DIR/ramp-randmap.cf) a main.cf `transport_maps` with one randmap per ramped\n' +
      'domain before the static transport table. CAVEAT: randmap picks again on every delivery attempt,\n' +
      'so the split is statistical and not sticky: a deferred recipient may retry on the other path (it\n' +
      'is still delivered once). Shares are rounded to whole percent. --postfix-transport is the Postfix\n' +
      'path (default `smtp:`).',
    async run(argv) {
      try {
        const { values } = parseArgs({
          args: argv,
          options: {
            config: { type: 'string' },
            out: { type: 'string' },
            'postfix-transport': { type: 'string' },
          },
        });
        const config = loadConfig(resolveConfigPath(values.config));
        const shares = withState(config, (state) => state.shares());
        const transportTable = join(postfixLayout(config.global.postfixDir).configDir, 'transport');
        const { text, rounded } = renderRandmap(shares, {
          engineTransport: engineTransportOf(config),
          postfixTransport: values['postfix-transport'],
          fallbackMaps: [`texthash:${transportTable}`],
        });
        for (const r of rounded) {
          process.stderr.write(`freight: ${r.domain}: randmap uses ${r.used}% (share is ${r.percent}%)\n`);
        }
        if (!values.out) {
          process.stdout.write(text);
          return 0;
        }
        mkdirSync(values.out, { recursive: true });
        const path = join(values.out, 'ramp-randmap.cf');
        // Written beside and renamed, so Postfix or an operator never reads half a file.
        writeFileSync(`${path}.tmp`, text);
        renameSync(`${path}.tmp`, path);
        process.stdout.write(`wrote ${path}\n`);
        return 0;
      } catch (err) {
        return fail(errorMessage(err));
      }
    },
  },
];
