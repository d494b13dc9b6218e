/**
 * The directive registry: every directive Freight understands, where it may appear, its value type, its
 * default (PowerMTA's where PowerMTA has one) and its parser. A declaration is the whole of a directive:
 * the builder, `config show` and the checks are driven by these tables. Global directives are in
 * globals.ts, the blocks that components add in extensions.ts.
 */
import type { Origin } from './value-types.js';
import { type KindValue, kindParser, type ValueKind, type ValueRules } from './values.js';

export type { ValueKind };

export interface DirectiveSpec<T = unknown> extends ValueRules {
  kind: ValueKind;
  /** Parsed default; undefined = no default (null in settings). */
  default?: T | null;
  /** May appear several times; values are collected in order. */
  repeatable?: boolean;
  /** Must name a defined object of this kind. */
  ref?: 'virtual-mta-pool' | 'virtual-mta' | 'smtp-pattern-list' | 'vmta-or-pool';
  description: string;
  /** Raw text to the typed value; throws a ValueError saying why the text is not one. */
  parse: (raw: string) => T;
}

type Declared<K extends ValueKind> = Partial<Omit<DirectiveSpec<KindValue[K]>, 'name' | 'kind' | 'parse'>>;

/** What a declaration parses to: its kind's type, narrowed to the choices when it lists them. */
type Parsed<K extends ValueKind, E> = E extends { choices: readonly (infer C)[] } ? C : KindValue[K];

/**
 * Declares a directive; its parser is its kind's, with the declaration's own checks (min, pattern, choices).
 * The result's type keeps what `extra` declares, so a reader knows whether a default is there.
 */
export function d<K extends ValueKind, E extends Declared<K> = Record<never, never>>(
  name: string,
  kind: K,
  description: string,
  extra: E = {} as E,
): DirectiveSpec<Parsed<K, E>> & E {
  const parse = kindParser(kind, { name, ...extra });
  // The choices check in the string parser is what narrows the value to Parsed<K, E>.
  return { name, kind, description, ...extra, parse } as DirectiveSpec<Parsed<K, E>> & E;
}

/** Field of DomainSettings → declaration; the order is the order `config show` lists them in. */
export const DOMAIN = {
  maxSmtpOut: d('max-smtp-out', 'int', 'concurrent connections to this domain per virtual MTA', {
    default: 20,
    min: 1,
  }),
  maxMsgRate: d('max-msg-rate', 'rate', 'messages per period (unlimited by default)', { default: null }),
  maxMsgPerConnection: d(
    'max-msg-per-connection',
    'int',
    'messages per connection before reconnecting (0 = unlimited)',
    {
      default: 0,
    },
  ),
  maxRcptPerMessage: d('max-rcpt-per-message', 'int', 'recipients per SMTP transaction', {
    default: 10,
    min: 1,
  }),
  maxConnectRate: d('max-connect-rate', 'rate', 'new connections per period', { default: null }),
  retryAfter: d(
    'retry-after',
    'duration-list',
    'retry schedule after a transient failure; the last interval repeats',
    {
      default: [600_000],
    },
  ),
  bounceAfter: d('bounce-after', 'duration', 'give up and bounce after this long in the queue', {
    default: 4 * 86_400_000,
  }),
  mxRollup: d(
    'mx-rollup',
    'string',
    'queue this domain together with others that share the name (e.g. gmail.com)',
  ),
  queueTo: d('queue-to', 'string', 'deliver through the queue of another domain'),
  route: d(
    'route',
    'string',
    'deliver to this host instead of the MX: [host]:port, host:port or host (PowerMTA route)',
    {
      pattern: /^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:\d{1,5})?$/i,
    },
  ),
  virtualMtaPool: d('virtual-mta-pool', 'string', 'pool of virtual MTAs used round-robin', {
    ref: 'virtual-mta-pool',
  }),
  virtualMta: d('virtual-mta', 'string', 'single virtual MTA to send from', { ref: 'virtual-mta' }),
  dkimSign: d('dkim-sign', 'bool', 'sign with the domain-key matching the From domain', { default: false }),
  dkimIdentity: d('dkim-identity', 'string', 'DKIM i= / d= identity to sign as'),
  dkimHeaders: d(
    'dkim-headers',
    'list',
    'header fields to sign, e.g. From,To,Subject,Date,Message-ID (default: the usual set)',
  ),
  dkimRequired: d(
    'dkim-required',
    'bool',
    'when no DKIM signature can be made, defer the message (yes) or send it unsigned (no)',
    {
      default: true,
    },
  ),
  useStarttls: d('use-starttls', 'bool', 'use STARTTLS when offered', { default: true }),
  requireStarttls: d('require-starttls', 'bool', 'fail (defer) if STARTTLS is not available', {
    default: false,
  }),
  smtpPatternList: d('smtp-pattern-list', 'string', 'reply patterns that change the queue mode', {
    ref: 'smtp-pattern-list',
  }),
  bounceUponNoMx: d('bounce-upon-no-mx', 'bool', 'bounce recipients whose domain has no MX (else retry)', {
    default: true,
  }),
  smtp421MeansMxUnavailable: d(
    'smtp-421-means-mx-unavailable',
    'bool',
    'on 421, try the next MX instead of deferring',
    {
      default: false,
    },
  ),
  connectionIdleTimeout: d(
    'connection-idle-timeout',
    'duration',
    'close an idle outbound connection after this',
    {
      default: 30_000,
    },
  ),
  backoffMaxMsgRate: d('backoff-max-msg-rate', 'rate', 'max-msg-rate while in backoff mode'),
  backoffRetryAfter: d('backoff-retry-after', 'duration-list', 'retry-after while in backoff mode'),
  backoffMaxSmtpOut: d('backoff-max-smtp-out', 'int', 'max-smtp-out while in backoff mode', { min: 1 }),
  backoffToNormalAfter: d(
    'backoff-to-normal-after',
    'duration',
    'return from backoff to normal mode after this',
    {
      default: 3_600_000,
    },
  ),
  // Freight's own: which path delivers the domain. `freight postfix render` gives postfix-routed domains a
  // paced Postfix transport and engine-routed ones a transport entry to smtp-listener. The default is
  // postfix so that adopting Freight moves nothing until the operator routes a domain (or ramps a share).
  routeVia: d('route-via', 'string', 'which path delivers this domain: engine or postfix', {
    default: 'postfix',
    choices: ['engine', 'postfix'] as const,
  }),
};

export const DOMAIN_DIRECTIVES: DirectiveSpec[] = Object.values(DOMAIN);

/** A declaration's setting type: its parsed type, or null as well when it has no default. */
type SettingOf<S> = S extends { default: infer D; parse(raw: string): infer T }
  ? null extends D
    ? T | null
    : T
  : S extends DirectiveSpec<infer T>
    ? T | null
    : never;

/** Effective settings for one (domain, vmta): defaults ← `<domain *>` ← best match ← vmta's nested block. */
export type DomainSettings = { [F in keyof typeof DOMAIN]: SettingOf<(typeof DOMAIN)[F]> } & {
  /** Where each value came from, keyed by directive name (e.g. 'max-smtp-out'). */
  origins: Record<string, Origin>;
};

export const SOURCE = {
  alwaysAllowRelaying: d(
    'always-allow-relaying',
    'bool',
    'clients from this range may relay through the engine',
    {
      default: false,
    },
  ),
  processXVirtualMta: d('process-x-virtual-mta', 'bool', 'honour the X-Virtual-MTA header', {
    default: false,
  }),
  jobidHeader: d('jobid-header', 'string', 'header carrying the job id (removed before delivery)'),
};

export const VMTA = {
  smtpSourceHost: d(
    'smtp-source-host',
    'string',
    'source IP and EHLO host name: `smtp-source-host 192.0.2.10 mta1.example.net`',
  ),
};

export const POOL = {
  virtualMta: d('virtual-mta', 'string', 'a member of this pool', { repeatable: true, ref: 'virtual-mta' }),
};

/** A block kind that a component adds to the language (e.g. `<policy-limit NAME>`). */
export interface BlockSpec {
  kind: string;
  named: 'required' | 'optional' | 'none';
  directives: DirectiveSpec[];
  /** Block kinds allowed nested inside (they must be registered too). */
  children?: string[];
  /** Only valid nested inside another block, never at top level. */
  nestedOnly?: boolean;
  description: string;
}

export function indexSpecs(specs: DirectiveSpec[]): Map<string, DirectiveSpec> {
  return new Map(specs.map((s) => [s.name, s]));
}
