/**
 * The global directives: each declaration carries its parser and how its value becomes a field of
 * GlobalSettings (paths resolved against the config file's folder, `file:` keys read, lists checked).
 * The settings type is derived from this table, so a new global directive is one entry here.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { validCidr } from './addresses.js';
import { type DirectiveSpec, d, indexSpecs } from './schema.js';
import type { Origin } from './value-types.js';

/** What a global's conversion may use: the config file's folder, and a way to report a bad value. */
export interface SettingContext {
  /** A path from the config, absolute: relative ones are taken from the main file's folder. */
  abs(path: string): string;
  /** Reports a problem at the directive's line; a built-in default is never reported. */
  error(message: string): void;
}

export interface GlobalDirective<T, S> extends DirectiveSpec<T> {
  /** The field's value from the parsed (or default) value; undefined = neither set nor defaulted. */
  setting(value: T | null | undefined, ctx: SettingContext): S;
}

type ParsedBy<D> = D extends DirectiveSpec<infer T> ? T : never;

/** A global's declaration and how its value becomes its field; the declaration's own type is kept. */
function field<D extends DirectiveSpec<unknown>, S>(
  spec: D,
  setting: (value: ParsedBy<D> | null | undefined, ctx: SettingContext) => S,
): D & GlobalDirective<ParsedBy<D>, S> {
  return { ...spec, setting } as D & GlobalDirective<ParsedBy<D>, S>;
}

/** The declaration has a default, so the value is always there. */
const declared = <T>(value: T | null | undefined): T => value as T;
const orNull = <T>(value: T | null | undefined): T | null => value ?? null;
const path = (value: string | null | undefined, ctx: SettingContext): string => ctx.abs(value as string);

/** `http-api-key`: the key itself, or `file:PATH` naming a file that holds it. */
function apiKey(value: string | null | undefined, ctx: SettingContext): string | null {
  if (!value) return null;
  if (!value.startsWith('file:')) return value;
  const file = ctx.abs(value.slice(5));
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    ctx.error(`http-api-key: cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
    return null;
  }
}

/** `http-read-allow`: every entry must be a CIDR or a bare address. */
function allowList(value: string[] | null | undefined, ctx: SettingContext): string[] {
  const list = value as string[];
  for (const cidr of list) {
    if (!validCidr(cidr))
      ctx.error(`http-read-allow: invalid CIDR '${cidr}' (expected e.g. 10.0.0.0/8 or 127.0.0.1)`);
  }
  return list;
}

/** Field name → declaration; the order is the order `config show` lists them in. */
export const GLOBAL = {
  hostName: field(
    d('host-name', 'string', 'this host name: EHLO default, Received headers, DSN reporting MTA'),
    (v) => v ?? hostname(),
  ),
  spoolDir: field(
    d('spool-dir', 'string', "engine's durable message spool", { default: '/var/spool/freight' }),
    path,
  ),
  acctDb: field(
    d('acct-db', 'string', 'SQLite accounting database', { default: '/var/lib/freight/acct.db' }),
    path,
  ),
  acctRetention: field(
    d('acct-retention', 'duration', 'delete accounting rows older than this', { default: 90 * 86_400_000 }),
    declared,
  ),
  acctPruneSchedule: field(
    d(
      'acct-prune-schedule',
      'string',
      'cron expression: when the tailer deletes rows older than acct-retention',
      {
        default: '17 * * * *',
      },
    ),
    declared,
  ),
  runDir: field(
    d('run-dir', 'string', 'pid files and control sockets of the running daemons', {
      default: '/run/freight',
    }),
    path,
  ),
  smtpListener: field(
    d('smtp-listener', 'host-port', 'engine intake used by the Postfix transport', {
      default: { host: '127.0.0.1', port: 2526 },
    }),
    declared,
  ),
  smtpListenerProtocol: field(
    d('smtp-listener-protocol', 'string', 'lmtp (per-recipient replies) or smtp', {
      default: 'lmtp',
      choices: ['lmtp', 'smtp'] as const,
    }),
    declared,
  ),
  policyListener: field(
    d('policy-listener', 'host-port', 'policy daemon (check_policy_service)', {
      default: { host: '127.0.0.1', port: 10040 },
    }),
    declared,
  ),
  policySocket: field(
    d('policy-socket', 'string', 'policy daemon unix socket, in addition to TCP'),
    (v, ctx) => (v ? ctx.abs(v) : null),
  ),
  rampListener: field(
    d('ramp-listener', 'host-port', 'socketmap server for transport_maps', {
      default: { host: '127.0.0.1', port: 10041 },
    }),
    declared,
  ),
  rampEnabled: field(
    d('ramp-enabled', 'bool', 'ask the ramp (socketmap on ramp-listener) first in transport_maps', {
      default: false,
    }),
    declared,
  ),
  /** null = `freight:inet:<smtp-listener>`. */
  rampEngineTransport: field(
    d('ramp-engine-transport', 'string', 'transport the ramp answers for engine-routed recipients', {
      default: null,
    }),
    orNull,
  ),
  httpMgmtListener: field(
    d('http-mgmt-listener', 'host-port', 'management API and /metrics', {
      default: { host: '127.0.0.1', port: 8190 },
    }),
    declared,
  ),
  httpApiKey: field(
    d('http-api-key', 'string', 'API key for state-changing calls: the key, or file:PATH'),
    apiKey,
  ),
  httpReadAllow: field(
    d('http-read-allow', 'list', 'CIDRs allowed to make read calls to the API without the key', {
      default: ['127.0.0.0/8', '::1/128'],
    }),
    allowList,
  ),
  maillog: field(
    d('maillog', 'string', 'Postfix maillog the tailer follows', { default: '/var/log/mail.log' }),
    path,
  ),
  maillogTimezone: field(
    d('maillog-timezone', 'string', 'IANA time zone of year-less maillog timestamps (default: this machine)'),
    orNull,
  ),
  dnsServer: field(d('dns-server', 'host-port', "engine's resolver (default: /etc/resolv.conf)"), orNull),
  remoteSmtpPort: field(
    d('remote-smtp-port', 'int', 'port the engine connects to on remote MX hosts', { default: 25, min: 1 }),
    declared,
  ),
  postmaster: field(
    d('postmaster', 'string', 'address that DSNs come from and that operators reach', {
      default: 'postmaster',
    }),
    declared,
  ),
  postfixDir: field(
    d('postfix-dir', 'string', 'private Postfix instance rendered and run by freight', {
      default: '/var/lib/freight/postfix',
    }),
    path,
  ),
  postfixListener: field(
    d('postfix-listener', 'host-port', "the private Postfix instance's smtpd listener", {
      default: { host: '127.0.0.1', port: 2525 },
    }),
    declared,
  ),
  postfixCommandDir: field(
    d('postfix-command-dir', 'string', 'where postfix, postconf and postqueue are installed', {
      default: '/usr/sbin',
    }),
    declared,
  ),
  // Engine intake and spool (read through sidecar/engine/settings.ts).
  spoolMinFree: field(
    d('spool-min-free', 'size', 'intake answers 452 4.3.1 below this much free space on the spool', {
      default: 1024 ** 3,
    }),
    declared,
  ),
  maxQueuedRecipients: field(
    d('max-queued-recipients', 'int', 'intake answers 452 4.3.1 above this many queued recipients', {
      default: 2_000_000,
      min: 1,
    }),
    declared,
  ),
  maxMessageSize: field(
    d('max-message-size', 'size', 'larger messages get 552 5.3.4 at intake', { default: 50 * 1024 ** 2 }),
    declared,
  ),
  maxIntakeRecipients: field(
    d('max-intake-recipients', 'int', 'recipients per intake transaction', { default: 1000, min: 1 }),
    declared,
  ),
  maxSmtpIn: field(
    d('max-smtp-in', 'int', 'concurrent intake connections', { default: 500, min: 1 }),
    declared,
  ),
  spoolCommitDelay: field(
    d(
      'spool-commit-delay',
      'duration',
      'longest a group-commit round waits for messages from the other open intake sessions (0: never)',
      { default: 40 },
    ),
    declared,
  ),
  dsnMaxBody: field(
    d('dsn-max-body', 'size', 'how much of the original message a RET=FULL DSN carries', {
      default: 1024 ** 2,
    }),
    declared,
  ),
};

type Globals = typeof GLOBAL;

/** The global settings of a loaded config, one field per entry of GLOBAL. */
export type GlobalSettings = { [F in keyof Globals]: ReturnType<Globals[F]['setting']> };

export const GLOBAL_DIRECTIVES: DirectiveSpec[] = Object.values(GLOBAL);
export const globalSpecs = indexSpecs(GLOBAL_DIRECTIVES);

/** Every global's setting, from the value set in the file or else the declared default. */
export function globalSettings(
  set: Map<string, { value: unknown; origin: Origin }>,
  abs: (path: string) => string,
  error: (at: Origin, message: string) => void,
): GlobalSettings {
  const settings: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(GLOBAL) as [string, GlobalDirective<unknown, unknown>][]) {
    const given = set.get(spec.name);
    const ctx: SettingContext = {
      abs,
      error: (message) => {
        if (given) error(given.origin, message);
      },
    };
    settings[key] = spec.setting(given ? given.value : spec.default, ctx);
  }
  return settings as GlobalSettings;
}
