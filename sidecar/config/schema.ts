/**
 * The directive registry: every directive Freight understands, where it may appear, its value type, its
 * default (PowerMTA's where PowerMTA has one) and its parser. A declaration is the whole of a directive:
 * the builder, `config show` and the checks are driven by these tables. Global directives are in
 * globals.ts, the blocks that components add in extensions.ts.
 */
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

/**
 * Declares a directive; its parser is its kind's, with the declaration's own checks (min, pattern, choices).
 * The result's type keeps what `extra` declares, so a reader knows whether a default is there.
 */
export function d<K extends ValueKind, E extends Declared<K> = Record<never, never>>(
  name: string,
  kind: K,
  description: string,
  extra: E = {} as E,
): DirectiveSpec<KindValue[K]> & E {
  return { name, kind, description, ...extra, parse: kindParser(kind, { name, ...extra }) };
}

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
