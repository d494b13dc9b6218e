/**
 * The directive registry: every directive Freight understands, where it may appear, its value type and
 * its default (PowerMTA's where PowerMTA has one). Components add their own directives here; the builder
 * and `config show` are driven entirely by this table.
 */
export type ValueKind =
  | 'string'
  | 'int'
  | 'bool'
  | 'duration'
  | 'duration-list'
  | 'rate'
  | 'size'
  | 'host-port'
  | 'list'
  | 'ratio';

export interface DirectiveSpec {
  name: string;
  kind: ValueKind;
  /** Parsed default; undefined = no default (null in settings). */
  default?: unknown;
  /** Lower bound for 'int'. */
  min?: number;
  /** Shape a 'string' value must have. */
  pattern?: RegExp;
  /** Allowed values for a 'string' directive (case-insensitive; stored lower-case). */
  choices?: string[];
  /** May appear several times; values are collected in order. */
  repeatable?: boolean;
  /** Must name a defined object of this kind. */
  ref?: 'virtual-mta-pool' | 'virtual-mta' | 'smtp-pattern-list' | 'vmta-or-pool';
  description: string;
}

const d = (
  name: string,
  kind: ValueKind,
  description: string,
  extra: Partial<DirectiveSpec> = {},
): DirectiveSpec => ({ name, kind, description, ...extra });

export const GLOBAL_DIRECTIVES: DirectiveSpec[] = [
  d('host-name', 'string', 'this host name: EHLO default, Received headers, DSN reporting MTA'),
  d('spool-dir', 'string', "engine's durable message spool", { default: '/var/spool/freight' }),
  d('acct-db', 'string', 'SQLite accounting database', { default: '/var/lib/freight/acct.db' }),
  d('acct-retention', 'duration', 'delete accounting rows older than this', { default: 90 * 86_400_000 }),
  d(
    'acct-prune-schedule',
    'string',
    'cron expression: when the tailer deletes rows older than acct-retention',
    {
      default: '17 * * * *',
    },
  ),
  d('run-dir', 'string', 'pid files and control sockets of the running daemons', { default: '/run/freight' }),
  d('smtp-listener', 'host-port', 'engine intake used by the Postfix transport', {
    default: { host: '127.0.0.1', port: 2526 },
  }),
  d('smtp-listener-protocol', 'string', 'lmtp (per-recipient replies) or smtp', {
    default: 'lmtp',
    choices: ['lmtp', 'smtp'],
  }),
  d('policy-listener', 'host-port', 'policy daemon (check_policy_service)', {
    default: { host: '127.0.0.1', port: 10040 },
  }),
  d('policy-socket', 'string', 'policy daemon unix socket, in addition to TCP'),
  d('ramp-listener', 'host-port', 'socketmap server for transport_maps', {
    default: { host: '127.0.0.1', port: 10041 },
  }),
  d('ramp-enabled', 'bool', 'ask the ramp (socketmap on ramp-listener) first in transport_maps', {
    default: false,
  }),
  d('ramp-engine-transport', 'string', 'transport the ramp answers for engine-routed recipients', {
    default: null,
  }),
  d('http-mgmt-listener', 'host-port', 'management API and /metrics', {
    default: { host: '127.0.0.1', port: 8190 },
  }),
  d('http-api-key', 'string', 'API key for state-changing calls: the key, or file:PATH'),
  d('http-read-allow', 'list', 'CIDRs allowed to make read calls to the API without the key', {
    default: ['127.0.0.0/8', '::1/128'],
  }),
  d('maillog', 'string', 'Postfix maillog the tailer follows', { default: '/var/log/mail.log' }),
  d('maillog-timezone', 'string', 'IANA time zone of year-less maillog timestamps (default: this machine)'),
  d('dns-server', 'host-port', "engine's resolver (default: /etc/resolv.conf)"),
  d('remote-smtp-port', 'int', 'port the engine connects to on remote MX hosts', { default: 25, min: 1 }),
  d('postmaster', 'string', 'address that DSNs come from and that operators reach', {
    default: 'postmaster',
  }),
  d('postfix-dir', 'string', 'private Postfix instance rendered and run by freight', {
    default: '/var/lib/freight/postfix',
  }),
  d('postfix-listener', 'host-port', "the private Postfix instance's smtpd listener", {
    default: { host: '127.0.0.1', port: 2525 },
  }),
  d('postfix-command-dir', 'string', 'where postfix, postconf and postqueue are installed', {
    default: '/usr/sbin',
  }),
  // Engine intake and spool (read through sidecar/engine/settings.ts).
  d('spool-min-free', 'size', 'intake answers 452 4.3.1 below this much free space on the spool', {
    default: 1024 ** 3,
  }),
  d('max-queued-recipients', 'int', 'intake answers 452 4.3.1 above this many queued recipients', {
    default: 2_000_000,
    min: 1,
  }),
  d('max-message-size', 'size', 'larger messages get 552 5.3.4 at intake', { default: 50 * 1024 ** 2 }),
  d('max-intake-recipients', 'int', 'recipients per intake transaction', { default: 1000, min: 1 }),
  d('max-smtp-in', 'int', 'concurrent intake connections', { default: 500, min: 1 }),
  d(
    'spool-commit-delay',
    'duration',
    'longest a group-commit round waits for messages from the other open intake sessions (0: never)',
    { default: 40 },
  ),
  d('dsn-max-body', 'size', 'how much of the original message a RET=FULL DSN carries', {
    default: 1024 ** 2,
  }),
];

export const DOMAIN_DIRECTIVES: DirectiveSpec[] = [
  d('max-smtp-out', 'int', 'concurrent connections to this domain per virtual MTA', { default: 20, min: 1 }),
  d('max-msg-rate', 'rate', 'messages per period (unlimited by default)', { default: null }),
  d('max-msg-per-connection', 'int', 'messages per connection before reconnecting (0 = unlimited)', {
    default: 0,
  }),
  d('max-rcpt-per-message', 'int', 'recipients per SMTP transaction', { default: 10, min: 1 }),
  d('max-connect-rate', 'rate', 'new connections per period', { default: null }),
  d('retry-after', 'duration-list', 'retry schedule after a transient failure; the last interval repeats', {
    default: [600_000],
  }),
  d('bounce-after', 'duration', 'give up and bounce after this long in the queue', {
    default: 4 * 86_400_000,
  }),
  d('mx-rollup', 'string', 'queue this domain together with others that share the name (e.g. gmail.com)'),
  d('queue-to', 'string', 'deliver through the queue of another domain'),
  d(
    'route',
    'string',
    'deliver to this host instead of the MX: [host]:port, host:port or host (PowerMTA route)',
    {
      pattern: /^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:\d{1,5})?$/i,
    },
  ),
  d('virtual-mta-pool', 'string', 'pool of virtual MTAs used round-robin', { ref: 'virtual-mta-pool' }),
  d('virtual-mta', 'string', 'single virtual MTA to send from', { ref: 'virtual-mta' }),
  d('dkim-sign', 'bool', 'sign with the domain-key matching the From domain', { default: false }),
  d('dkim-identity', 'string', 'DKIM i= / d= identity to sign as'),
  d(
    'dkim-headers',
    'list',
    'header fields to sign, e.g. From,To,Subject,Date,Message-ID (default: the usual set)',
  ),
  d(
    'dkim-required',
    'bool',
    'when no DKIM signature can be made, defer the message (yes) or send it unsigned (no)',
    {
      default: true,
    },
  ),
  d('use-starttls', 'bool', 'use STARTTLS when offered', { default: true }),
  d('require-starttls', 'bool', 'fail (defer) if STARTTLS is not available', { default: false }),
  d('smtp-pattern-list', 'string', 'reply patterns that change the queue mode', { ref: 'smtp-pattern-list' }),
  d('bounce-upon-no-mx', 'bool', 'bounce recipients whose domain has no MX (else retry)', { default: true }),
  d('smtp-421-means-mx-unavailable', 'bool', 'on 421, try the next MX instead of deferring', {
    default: false,
  }),
  d('connection-idle-timeout', 'duration', 'close an idle outbound connection after this', {
    default: 30_000,
  }),
  d('backoff-max-msg-rate', 'rate', 'max-msg-rate while in backoff mode'),
  d('backoff-retry-after', 'duration-list', 'retry-after while in backoff mode'),
  d('backoff-max-smtp-out', 'int', 'max-smtp-out while in backoff mode', { min: 1 }),
  d('backoff-to-normal-after', 'duration', 'return from backoff to normal mode after this', {
    default: 3_600_000,
  }),
  // Freight's own: which path delivers the domain. `freight postfix render` gives postfix-routed domains a
  // paced Postfix transport and engine-routed ones a transport entry to smtp-listener. The default is
  // postfix so that adopting Freight moves nothing until the operator routes a domain (or ramps a share).
  d('route-via', 'string', 'which path delivers this domain: engine or postfix', {
    default: 'postfix',
    choices: ['engine', 'postfix'],
  }),
];

export const SOURCE_DIRECTIVES: DirectiveSpec[] = [
  d('always-allow-relaying', 'bool', 'clients from this range may relay through the engine', {
    default: false,
  }),
  d('process-x-virtual-mta', 'bool', 'honour the X-Virtual-MTA header', { default: false }),
  d('jobid-header', 'string', 'header carrying the job id (removed before delivery)'),
];

export const VMTA_DIRECTIVES: DirectiveSpec[] = [
  d(
    'smtp-source-host',
    'string',
    'source IP and EHLO host name: `smtp-source-host 192.0.2.10 mta1.example.net`',
  ),
];

export const POOL_DIRECTIVES: DirectiveSpec[] = [
  d('virtual-mta', 'string', 'a member of this pool', { repeatable: true, ref: 'virtual-mta' }),
];

export function indexSpecs(specs: DirectiveSpec[]): Map<string, DirectiveSpec> {
  return new Map(specs.map((s) => [s.name, s]));
}
