/**
 * A private Postfix instance per test file: its own directories under a temp dir, loopback ports, its
 * own maillog. Rendered by the same code as `freight postfix render`, so tests exercise the real templates.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../sidecar/config/load.js';
import type { FreightConfig } from '../sidecar/config/model.js';
import { postfixCommand, startPostfix, stopPostfix } from '../sidecar/postfix/instance.js';
import type { PostfixLayout } from '../sidecar/postfix/layout.js';
import { renderPostfix } from '../sidecar/postfix/render.js';
import { freePort } from './ports.js';
import { watchLockPenalty } from './postfix-lock-penalty.js';

export interface TestPostfixOptions {
  /** Extra freight.conf text (domain blocks, policy limits …) appended to the generated globals. */
  freightConf?: string;
  /** Global directives to set in freight.conf (name → value), e.g. { 'smtp-listener': '127.0.0.1:2600' }. */
  globals?: Record<string, string>;
  /** Static transport entries, e.g. ['example.com smtp:[127.20.1.5]:2525']. */
  transports?: string[];
  mainOverrides?: Record<string, string>;
  /** Keep the temp dir after stop (debugging). */
  keep?: boolean;
}

export interface TestPostfix {
  dir: string;
  configPath: string;
  config: FreightConfig;
  layout: PostfixLayout;
  host: string;
  port: number;
  maillog: string;
  readLog(): string;
  /** Resolves with the matching lines once `count` lines match `re`. */
  waitForLog(re: RegExp, opts?: { count?: number; timeoutMs?: number }): Promise<string[]>;
  postqueue(args: string[]): Promise<string>;
  /** Queue ids currently in the Postfix queue. */
  queueIds(): Promise<string[]>;
  stop(): Promise<void>;
}

/** Defaults that make a test instance quick: short queue runs and backoff, no DNS for the Postfix path. */
export const FAST_POSTFIX: Record<string, string> = {
  smtp_dns_support_level: 'disabled',
  smtpd_peername_lookup: 'no',
  queue_run_delay: '1s',
  minimal_backoff_time: '1s',
  maximal_backoff_time: '2s',
  smtp_connect_timeout: '5s',
  lmtp_connect_timeout: '5s',
  default_destination_concurrency_limit: '20',
  smtp_connection_cache_on_demand: 'yes',
  daemon_timeout: '60s',
  // A delivery agent that failed (e.g. while a test's engine restarts) is retried in seconds, not a minute.
  transport_retry_time: '2s',
  service_throttle_time: '2s',
};

export async function writeFreightConf(dir: string, opts: TestPostfixOptions): Promise<string> {
  const port = await freePort();
  const globals: Record<string, string> = {
    'host-name': 'freight.test',
    'spool-dir': join(dir, 'spool'),
    'acct-db': join(dir, 'acct.db'),
    'run-dir': join(dir, 'run'),
    'postfix-dir': join(dir, 'postfix'),
    'postfix-listener': `127.0.0.1:${port}`,
    maillog: join(dir, 'postfix', 'log', 'maillog'),
    'smtp-listener': `127.0.0.1:${await freePort()}`,
    'policy-listener': `127.0.0.1:${await freePort()}`,
    'ramp-listener': `127.0.0.1:${await freePort()}`,
    'http-mgmt-listener': `127.0.0.1:${await freePort()}`,
    ...opts.globals,
  };
  const text = [
    ...Object.entries(globals).map(([k, v]) => `${k} ${v}`),
    '<source 127.0.0.0/8>',
    '  always-allow-relaying yes',
    '  process-x-virtual-mta yes',
    '  jobid-header X-Job',
    '</source>',
    opts.freightConf ?? '',
    '',
  ].join('\n');
  const path = join(dir, 'freight.conf');
  writeFileSync(path, text);
  return path;
}

/**
 * When qmgr finds a retried queue file still locked by the delivery agent that just deferred it (which
 * happens under load with the 1 s backoff above), it parks the file in `incoming` for 60 s and looks
 * there again only on its next wake-up: 300 s in the rendered master.cf. Tests wake it every 5 s.
 */
function wakeQmgrOften(layout: PostfixLayout): void {
  const path = join(layout.configDir, 'master.cf');
  const text = readFileSync(path, 'utf8');
  const woken = text.replace(
    /^(qmgr\s+unix\s+\S+\s+\S+\s+\S+\s+)300(\s)/m,
    (_, head, tail) => `${head}5${tail}`,
  );
  if (woken === text) throw new Error(`no qmgr line with a 300 s wakeup in ${path}`);
  writeFileSync(path, woken);
}

export async function startTestPostfix(opts: TestPostfixOptions = {}): Promise<TestPostfix> {
  const dir = mkdtempSync(join(tmpdir(), 'freight-pf-'));
  // Postfix's unprivileged daemons must be able to traverse to their data and queue directories.
  chmodSync(dir, 0o755);
  const configPath = await writeFreightConf(dir, opts);
  const config = loadConfig(configPath);
  const { layout } = renderPostfix(config, {
    mainOverrides: { ...FAST_POSTFIX, ...opts.mainOverrides },
    extraTransports: opts.transports ?? [],
  });
  wakeQmgrOften(layout);
  const commandDir = config.global.postfixCommandDir;
  await startPostfix(commandDir, layout);
  const lockPenalty = watchLockPenalty(layout.queueDir, () =>
    postfixCommand(commandDir, layout, ['-f'], 'postqueue'),
  );
  const readLog = () => (existsSync(layout.maillog) ? readFileSync(layout.maillog, 'utf8') : '');
  const handle: TestPostfix = {
    dir,
    configPath,
    config,
    layout,
    host: config.global.postfixListener.host,
    port: config.global.postfixListener.port,
    maillog: layout.maillog,
    readLog,
    async waitForLog(re, o = {}) {
      const count = o.count ?? 1;
      const deadline = Date.now() + (o.timeoutMs ?? 30_000);
      const global = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
      for (;;) {
        const lines = readLog()
          .split('\n')
          .filter((l) => {
            global.lastIndex = 0;
            return global.test(l);
          });
        if (lines.length >= count) return lines;
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${count}× ${re} in ${layout.maillog} (saw ${lines.length})`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async postqueue(args) {
      return (await postfixCommand(commandDir, layout, args, 'postqueue')).stdout;
    },
    async queueIds() {
      const out = (await postfixCommand(commandDir, layout, ['-j'], 'postqueue')).stdout;
      return out
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { queue_id: string }).queue_id);
    },
    async stop() {
      lockPenalty.stop();
      await stopPostfix(commandDir, layout);
      if (!(opts.keep ?? process.env.FREIGHT_TEST_KEEP === '1'))
        rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}
