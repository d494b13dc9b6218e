/** `freight tailer` (the maillog daemon) and `freight acct import FILE…` (historical logs). */
import { parseArgs } from 'node:util';
import { AcctStore } from '../acct/store.js';
import type { Command } from '../common/command.js';
import { runDaemon } from '../common/daemon.js';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { fail, printJson } from '../common/output.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { FreightConfig } from '../config/model.js';
import { operatorRules, Tailer } from './daemon.js';
import { importLogs } from './import.js';

function progressBar(file: string, done: number, total: number): void {
  const width = 30;
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const fill = Math.round(frac * width);
  const name = file.length > 40 ? `…${file.slice(-39)}` : file;
  process.stderr.write(
    `\r${name} [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${(frac * 100).toFixed(0)}%`,
  );
}

export const commands: Command[] = [
  {
    name: 'tailer',
    summary: 'follow the Postfix maillog into accounting rows (foreground daemon)',
    usage:
      'freight tailer [--config FILE]\n\nFollows `maillog` from freight.conf, resumes from its saved position after a restart,\n' +
      'follows rotation (rename, copytruncate, postfix logrotate). SIGHUP reloads, SIGTERM stops.',
    async run(argv) {
      const log = createLogger('tailer');
      let configPath: string;
      let config: FreightConfig;
      try {
        const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
        configPath = resolveConfigPath(values.config);
        config = loadConfig(configPath);
      } catch (err) {
        return fail(errorMessage(err));
      }
      let tailer: Tailer;
      try {
        tailer = await Tailer.start(config, { log });
      } catch (err) {
        return fail(errorMessage(err));
      }
      const stopped = runDaemon('tailer', config.global.runDir, log, {
        reload: () => {
          const next = loadConfig(configPath);
          if (next.global.maillog !== config.global.maillog || next.global.acctDb !== config.global.acctDb) {
            log.warn('maillog and acct-db changes take effect after a restart');
          }
          tailer.reload(next);
          config = next;
        },
        stop: () => tailer.stop(),
      });
      await stopped;
      return 0;
    },
  },
  {
    name: 'acct import',
    summary: 'import historical Postfix maillogs (plain or .gz) into accounting; idempotent',
    usage:
      'freight acct import FILE… [--config FILE | --db PATH] [--timezone ZONE] [--json]\n\n' +
      'List rotated files oldest first so messages spanning two files are joined. Importing the same\n' +
      'lines again adds nothing.',
    async run(argv) {
      try {
        const { values, positionals } = parseArgs({
          args: argv,
          options: {
            config: { type: 'string' },
            db: { type: 'string' },
            timezone: { type: 'string' },
            json: { type: 'boolean', default: false },
          },
          allowPositionals: true,
        });
        if (positionals.length === 0)
          return fail('usage: freight acct import FILE… [--config FILE | --db PATH]');
        const config = values.db && !values.config ? null : loadConfig(resolveConfigPath(values.config));
        const store = AcctStore.open(values.db ?? config!.global.acctDb);
        const tty = process.stderr.isTTY === true && !values.json;
        const started = Date.now();
        try {
          const r = await importLogs(store, positionals, {
            timeZone: values.timezone ?? config?.global.maillogTimezone ?? null,
            engine: config?.global.smtpListener ?? null,
            operatorRules: config ? operatorRules(config) : [],
            onProgress: tty ? progressBar : undefined,
          });
          if (tty) process.stderr.write('\n');
          const seconds = (Date.now() - started) / 1000;
          const summary = {
            files: r.files,
            lines: r.stats.lines,
            rows: r.stats.rows,
            inserted: r.inserted,
            alreadyPresent: r.stats.rows - r.inserted - r.quarantined,
            quarantined: r.quarantined,
            unknownLines: r.stats.kinds.unknown ?? 0,
            seconds: Number(seconds.toFixed(2)),
            linesPerSecond: seconds > 0 ? Math.round(r.stats.lines / seconds) : null,
          };
          if (values.json) {
            printJson({ ...summary, unknownSamples: r.stats.unknownSamples });
          } else {
            process.stdout.write(
              `imported ${summary.files} file(s): ${summary.lines} lines, ${summary.rows} rows ` +
                `(${summary.inserted} new, ${summary.alreadyPresent} already present, ${summary.quarantined} quarantined), ` +
                `${summary.unknownLines} unrecognised lines, ${summary.seconds}s\n`,
            );
            for (const s of r.stats.unknownSamples.slice(0, 5))
              process.stdout.write(`  unrecognised: ${s}\n`);
          }
          return 0;
        } finally {
          store.close();
        }
      } catch (err) {
        return fail(errorMessage(err));
      }
    },
  },
];
