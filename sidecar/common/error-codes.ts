/**
 * Every code a FreightError can carry, declared once, by the component that owns it, with what it means
 * and, when the management API answers with it, the HTTP status. `FreightError` accepts only these codes,
 * so a new condition is declared here before it can be thrown, and one condition has one code wherever it
 * is detected. A component's codes start with its prefixes; the type below refuses any other.
 * `scripts/error-codes.ts` prints the API's table in docs/api.md from this file.
 */

export interface CodeDeclaration {
  readonly meaning: string;
  /** The management API's answer; a code without one is a 500 there. */
  readonly status?: number;
}

type Codes<Prefix extends string> = { readonly [K in `${Prefix}_${string}`]: CodeDeclaration };

const common = {
  DAEMON_RUNNING: { meaning: 'a live process holds the pid file: this daemon is already running' },
} as const satisfies Codes<'DAEMON'>;

const config = {
  CONFIG_AMBIGUOUS: { meaning: 'no config file given and more than one running stack to take it from' },
  CONFIG_INVALID: { meaning: 'the config file has errors (each one names file:line)', status: 422 },
  CONFIG_NOT_FOUND: {
    meaning: 'no config file given, in FREIGHT_CONFIG, at a default path or a running stack',
  },
} as const satisfies Codes<'CONFIG'>;

const acct = {
  ACCT_BAD_GROUP: { meaning: 'an accounting summary grouped by an unknown field', status: 400 },
  ACCT_BAD_RECORD: { meaning: 'an accounting row with a missing or invalid field' },
  ACCT_BAD_RETENTION: { meaning: 'a prune age that is not a positive duration' },
  ACCT_BAD_TIME: { meaning: 'a time that is neither a duration back from now nor an ISO time', status: 400 },
  ACCT_FLUSH_FAILED: { meaning: 'accounting rows still unwritten when the writer closed' },
  ACCT_READONLY: { meaning: 'a writer was given a read-only accounting store' },
  ACCT_SCHEMA_NEWER: { meaning: 'the accounting database was created by a newer Freight' },
  ACCT_SCHEMA_OLD: { meaning: 'the accounting database needs a migration that a read-only open cannot do' },
  ACCT_UNAVAILABLE: { meaning: 'the accounting database is missing or SQLite cannot open it', status: 503 },
  ACCT_WRITER_CLOSED: { meaning: 'a row written after the accounting writer closed' },
} as const satisfies Codes<'ACCT'>;

const classify = {
  CLASSIFY_CORPUS_INVALID: { meaning: 'a line of the labelled bounce corpus cannot be read' },
  CLASSIFY_RULES_INVALID: { meaning: 'the bounce rule file has errors (each one names its line)' },
  CLASSIFY_RULES_MISSING: { meaning: 'the bounce rule file cannot be read' },
} as const satisfies Codes<'CLASSIFY'>;

const suppress = {
  SUPPRESS_BAD_EXPIRY: { meaning: 'a suppression expiry that is not a time or a duration', status: 400 },
  SUPPRESS_BAD_KEY: { meaning: 'a suppression entry that is neither an address nor a domain', status: 400 },
  SUPPRESS_BAD_SOURCE: { meaning: 'a suppression entry with an unknown source', status: 400 },
  SUPPRESS_NOT_FOUND: { meaning: 'the address or domain is not on the suppression list', status: 404 },
} as const satisfies Codes<'SUPPRESS'>;

const dkim = {
  DKIM_BAD_KEY: { meaning: 'a domain-key file that is missing, not PEM, or of a type DKIM cannot use' },
  DKIM_FAILED: { meaning: 'the message could not be read or signed' },
  DKIM_NO_FROM: { meaning: 'the message has no From: domain to sign for' },
  DKIM_NO_KEY: { meaning: 'no domain-key covers the signing domain' },
} as const satisfies Codes<'DKIM'>;

const dns = {
  DNS_FAILED: { meaning: 'the DNS server answered a lookup with an error' },
  DNS_NO_SERVER: { meaning: 'no dns-server configured and none in /etc/resolv.conf' },
  DNS_TIMEOUT: { meaning: 'a DNS lookup got no answer in time' },
} as const satisfies Codes<'DNS'>;

const postfix = {
  POSTFIX_COMMAND_FAILED: { meaning: 'a Postfix command (postfix, postmap, postconf) exited with an error' },
  POSTFIX_NOT_INSTALLED: { meaning: 'a Postfix command is not in postfix-command-dir' },
  POSTFIX_RUNNING: { meaning: 'the private Postfix instance is already running' },
  POSTFIX_START_FAILED: { meaning: 'the private Postfix instance did not start' },
  POSTFIX_TEMPLATE: { meaning: 'a Postfix config template names a value the renderer does not have' },
} as const satisfies Codes<'POSTFIX'>;

const engine = {
  ENGINE_BAD_SOURCE: { meaning: 'a <source> block whose range is not a CIDR' },
  ENGINE_CONTROL_BAD_REQUEST: {
    meaning: 'a control request that is not JSON or names no valid op',
    status: 400,
  },
  ENGINE_UNAVAILABLE: {
    meaning: 'the engine did not answer: not running, too slow, or it failed the request',
    status: 503,
  },
  DSN_OUTBOX_CORRUPT: { meaning: 'a DSN waiting in the outbox has no envelope line or no message' },
  DSN_OUTBOX_MOVE: { meaning: 'a corrupt DSN could not be moved out of the outbox' },
  FAULT_SPEC: { meaning: 'FREIGHT_FAULT names an unknown point, action or count' },
  SPOOL_CLOSED: { meaning: 'a message handed to the spool after it closed' },
  SPOOL_JOURNAL_SYNC: { meaning: 'the spool journal could not be synced to disk on close' },
  SPOOL_READ: { meaning: 'a spooled body is gone, short or unreadable' },
  SPOOL_WRITE: { meaning: 'a body or journal write or fsync failed' },
} as const satisfies Codes<'ENGINE' | 'DSN' | 'FAULT' | 'SPOOL'>;

const policy = {
  POLICY_CLIENT_BUSY: { meaning: 'a second request on a policy client before the first was answered' },
  POLICY_CLIENT_CLOSED: { meaning: 'the policy server closed the connection' },
  POLICY_CONFIG_INVALID: { meaning: 'a <policy> or <policy-limit> block has errors' },
  POLICY_LISTEN: { meaning: 'the policy daemon cannot listen on its address or unix socket' },
  POLICY_UNAVAILABLE: {
    meaning: 'the policy daemon did not answer: not running, too slow, or unreadable',
    status: 503,
  },
} as const satisfies Codes<'POLICY'>;

const tailer = {
  TAILER_BAD_SCHEDULE: { meaning: 'acct-prune-schedule is not a cron expression' },
  TAILER_IMPORT_FILE: { meaning: 'a maillog to import cannot be read' },
  TAILER_ROW_ROLLED_BACK: {
    meaning: 'a refused row rolled its batch back; the batch is written again without it',
  },
} as const satisfies Codes<'TAILER'>;

const ramp = {
  RAMP_BAD_DOMAIN: { meaning: 'not a domain name', status: 400 },
  RAMP_BAD_PERCENT: { meaning: 'a ramp share outside 0..100 or with more than two decimals', status: 400 },
  RAMP_LISTEN: { meaning: 'the ramp socketmap cannot listen on its address' },
  RAMP_STATE: { meaning: 'the ramp tables cannot be created in the accounting database' },
} as const satisfies Codes<'RAMP'>;

const deliverability = {
  DELIV_BAD_CONFIG: { meaning: 'a <warmup-plan> or <dnsbl-check> block has an invalid value' },
} as const satisfies Codes<'DELIV'>;

const api = {
  API_BAD_REQUEST: {
    meaning: 'a body or query that fails the route schema, or unreadable JSON',
    status: 400,
  },
  API_INTERNAL: { meaning: 'an unexpected failure inside the API', status: 500 },
  API_KEY_INVALID: { meaning: 'X-API-Key does not match http-api-key', status: 401 },
  API_KEY_NOT_CONFIGURED: { meaning: 'a state-changing call while no http-api-key is set', status: 403 },
  API_KEY_REQUIRED: {
    meaning: 'this call needs X-API-Key (a change, or a read from outside http-read-allow)',
    status: 401,
  },
  API_NOT_FOUND: { meaning: 'no such route', status: 404 },
  API_READ_FORBIDDEN: { meaning: 'a read from outside http-read-allow with no key', status: 403 },
} as const satisfies Codes<'API'>;

/** By component, in layer order. */
export const ERROR_CODES = {
  common,
  config,
  acct,
  classify,
  suppress,
  dkim,
  dns,
  postfix,
  engine,
  policy,
  tailer,
  ramp,
  deliverability,
  api,
} as const;

type Registry = typeof ERROR_CODES;
export type ErrorComponent = keyof Registry;
export type ErrorCode = { [C in ErrorComponent]: keyof Registry[C] & string }[ErrorComponent];

export interface DeclaredCode extends CodeDeclaration {
  readonly code: ErrorCode;
  readonly component: ErrorComponent;
}

const BY_CODE = new Map<string, DeclaredCode>();
for (const [component, codes] of Object.entries(ERROR_CODES)) {
  for (const [code, declaration] of Object.entries(codes)) {
    BY_CODE.set(code, { code: code as ErrorCode, component: component as ErrorComponent, ...declaration });
  }
}

/** Every declared code, in registry order. */
export function declaredCodes(): DeclaredCode[] {
  return [...BY_CODE.values()];
}

/** The declaration of `code`; undefined for a string that is not a declared code (from the wire, say). */
export function declarationOf(code: string): DeclaredCode | undefined {
  return BY_CODE.get(code);
}
