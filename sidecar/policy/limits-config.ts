/**
 * The `<policy-limit NAME>` and `<policy>` blocks of freight.conf, and their conversion into typed limits.
 *
 *   <policy-limit tenant-rcpts>
 *     key        sasl_username              # parts joined by commas: sasl_username, sender, sender_domain,
 *                                           #   client_address[/N], recipient, recipient_domain, policy_context
 *     count      recipients                 # recipients | messages | bytes
 *     count-at   rcpt                       # rcpt | data | end-of-message (bytes: end-of-message only)
 *     rate       100/m                      # repeatable: every window must have room
 *     rate       5000/d
 *     action     DEFER_IF_PERMIT            # or DEFER, REJECT, DEFER_IF_REJECT, 4NN, 5NN
 *     text       "4.7.1 {limit}: {key} over {rate}"
 *     store-failure open                    # counters store unavailable: open = decide from memory, closed = defer
 *     <policy-override big-tenant>          # the key's value (parts joined by commas)
 *       rate 1000/m
 *     </policy-override>
 *   </policy-limit>
 */
import { FreightError } from '../common/errors.js';
import type { BlockSpec } from '../config/extensions.js';
import type { ExtensionBlock, FreightConfig, Origin, Rate } from '../config/model.js';
import type { DirectiveSpec } from '../config/schema.js';
import { formatRate } from '../config/units.js';

const d = (
  name: string,
  kind: DirectiveSpec['kind'],
  description: string,
  extra: Partial<DirectiveSpec> = {},
) => ({ name, kind, description, ...extra }) as DirectiveSpec;

const RATE = d('rate', 'rate', 'a window: count/period, e.g. 100/m; repeat for several windows', {
  repeatable: true,
});
const ACTION = d('action', 'string', 'reply action when over the limit (default DEFER_IF_PERMIT)');
const TEXT = d('text', 'string', 'reply text; {limit}, {key} and {rate} are replaced');

export const POLICY_OVERRIDE_BLOCK: BlockSpec = {
  kind: 'policy-override',
  named: 'required',
  nestedOnly: true,
  description: 'different windows (or action/text) for one key value of the enclosing <policy-limit>',
  directives: [RATE, ACTION, TEXT],
};

export const POLICY_LIMIT_BLOCK: BlockSpec = {
  kind: 'policy-limit',
  named: 'required',
  children: ['policy-override'],
  description: 'a rate limit applied by `freight policy` at SMTP time',
  directives: [
    d('key', 'list', 'what is counted separately: attribute names joined by commas'),
    d('count', 'string', 'recipients | messages | bytes (default recipients)'),
    d('count-at', 'string', 'rcpt | data | end-of-message (default rcpt; bytes: end-of-message)'),
    RATE,
    ACTION,
    TEXT,
    d('store-failure', 'string', 'open | closed: what to do while the counter store is unavailable'),
    d('ipv6-prefix', 'int', 'prefix length grouping IPv6 client addresses for client_address/N keys', {
      min: 1,
    }),
  ],
};

export const POLICY_BLOCK: BlockSpec = {
  kind: 'policy',
  named: 'none',
  description: 'settings of the policy daemon (suppression check, persistence)',
  directives: [
    d('suppression', 'bool', 'refuse recipients on the suppression list at RCPT (default yes)'),
    d('suppression-action', 'string', 'reply action for a suppressed recipient (default REJECT)'),
    d('suppression-text', 'string', 'reply text for a suppressed recipient; {recipient} is replaced'),
    d('suppression-store-failure', 'string', 'open | closed while the suppression list cannot be read'),
    d('snapshot-interval', 'duration', 'how often counters are saved (default 1s)'),
  ],
};

export const POLICY_BLOCKS: BlockSpec[] = [POLICY_LIMIT_BLOCK, POLICY_OVERRIDE_BLOCK, POLICY_BLOCK];

export type KeyAttribute =
  | 'sasl_username'
  | 'sender'
  | 'sender_domain'
  | 'client_address'
  | 'recipient'
  | 'recipient_domain'
  | 'policy_context';

const KEY_ATTRIBUTES: ReadonlySet<string> = new Set<KeyAttribute>([
  'sasl_username',
  'sender',
  'sender_domain',
  'client_address',
  'recipient',
  'recipient_domain',
  'policy_context',
]);

export interface KeyPart {
  attribute: KeyAttribute;
  /** For client_address/N: IPv4 prefix length (N) and IPv6 prefix length; null = the whole address. */
  prefixV4: number | null;
  prefixV6: number | null;
}

export type CountUnit = 'recipients' | 'messages' | 'bytes';
export type CountStage = 'RCPT' | 'DATA' | 'END-OF-MESSAGE';

export interface LimitReply {
  action: string;
  /** Template; {limit}, {key}, {rate} replaced at reply time. */
  text: string;
}

export interface KeyOverride extends LimitReply {
  /** Empty = unlimited for this key. */
  windows: Rate[];
}

export interface PolicyLimit extends LimitReply {
  name: string;
  key: KeyPart[];
  /** The key as written, e.g. `sasl_username,recipient_domain`. */
  keyLabel: string;
  count: CountUnit;
  countAt: CountStage;
  windows: Rate[];
  storeFailure: 'open' | 'closed';
  /** By lower-case key value. */
  overrides: Map<string, KeyOverride>;
  origin: Origin;
}

export interface SuppressionSettings {
  enabled: boolean;
  action: string;
  /** Template; {recipient} replaced. */
  text: string;
  storeFailure: 'open' | 'closed';
}

export interface PolicySettings {
  limits: PolicyLimit[];
  suppression: SuppressionSettings;
  snapshotIntervalMs: number;
}

const ACTION_RE = /^(DEFER_IF_PERMIT|DEFER_IF_REJECT|DEFER|REJECT|[45]\d\d)$/;

function defaultText(action: string, what: 'limit' | 'suppressed'): string {
  const permanent = action === 'REJECT' || action.startsWith('5');
  if (what === 'suppressed')
    return `${permanent ? '5' : '4'}.1.1 <{recipient}>: recipient address suppressed`;
  return `${permanent ? '5' : '4'}.7.1 Rate limit {limit} exceeded for {key} ({rate})`;
}

type Values = ExtensionBlock['values'];

function first<T>(values: Values, name: string): { value: T; origin: Origin } | undefined {
  return values.get(name)?.[0] as { value: T; origin: Origin } | undefined;
}

function where(origin: Origin): string {
  return origin === 'default' ? 'freight.conf' : `${origin.file}:${origin.line}`;
}

/** Turn the parsed blocks into settings; every problem is reported as `file:line: reason`. */
export function buildPolicySettings(config: Pick<FreightConfig, 'extensions'>): PolicySettings {
  const errors: string[] = [];
  const limits: PolicyLimit[] = [];
  const names = new Set<string>();
  let policyBlock: ExtensionBlock | null = null;

  const readReply = (values: Values, fallback: LimitReply | null, origin: Origin): LimitReply | null => {
    const a = first<string>(values, 'action');
    const action = a ? a.value.toUpperCase() : (fallback?.action ?? 'DEFER_IF_PERMIT');
    if (!ACTION_RE.test(action)) {
      errors.push(`${where(a?.origin ?? origin)}: action must be DEFER_IF_PERMIT, DEFER, REJECT, 4NN or 5NN`);
      return null;
    }
    const t = first<string>(values, 'text');
    const text = t ? t.value : a || !fallback ? defaultText(action, 'limit') : fallback.text;
    return { action, text };
  };
  const readWindows = (values: Values): Rate[] =>
    (values.get('rate') ?? []).map((v) => v.value as Rate | null).filter((r): r is Rate => r !== null);

  for (const block of config.extensions) {
    if (block.kind === 'policy') {
      if (policyBlock) errors.push(`${where(block.origin)}: only one <policy> block is allowed`);
      policyBlock = block;
      continue;
    }
    if (block.kind !== 'policy-limit' || block.name === null) continue;
    const at = where(block.origin);
    const name = block.name;
    if (names.has(name)) errors.push(`${at}: duplicate <policy-limit ${name}>`);
    names.add(name);

    const keyValue = first<string[]>(block.values, 'key');
    if (!keyValue) {
      errors.push(`${at}: <policy-limit ${name}> needs a key (e.g. key sasl_username)`);
      continue;
    }
    const ipv6Prefix = first<number>(block.values, 'ipv6-prefix')?.value ?? 64;
    const key: KeyPart[] = [];
    for (const raw of keyValue.value) {
      const m = /^([a-z_]+)(?:\/(\d+))?$/.exec(raw.toLowerCase());
      if (!m || !KEY_ATTRIBUTES.has(m[1]!)) {
        errors.push(
          `${where(keyValue.origin)}: unknown key '${raw}' (use ${[...KEY_ATTRIBUTES].join(', ')})`,
        );
        continue;
      }
      const prefix = m[2] === undefined ? null : Number(m[2]);
      if (prefix !== null && (m[1] !== 'client_address' || prefix < 1 || prefix > 32)) {
        errors.push(`${where(keyValue.origin)}: '${raw}': only client_address/N (N 1..32) takes a prefix`);
        continue;
      }
      key.push({
        attribute: m[1] as KeyAttribute,
        prefixV4: prefix,
        prefixV6: prefix === null ? null : Math.min(ipv6Prefix, 128),
      });
    }

    const countRaw = (first<string>(block.values, 'count')?.value ?? 'recipients').toLowerCase();
    if (countRaw !== 'recipients' && countRaw !== 'messages' && countRaw !== 'bytes') {
      errors.push(`${at}: count must be recipients, messages or bytes`);
      continue;
    }
    const count = countRaw as CountUnit;
    const atRaw = first<string>(block.values, 'count-at');
    const stage = (atRaw?.value ?? (count === 'bytes' ? 'end-of-message' : 'rcpt')).toUpperCase();
    if (stage !== 'RCPT' && stage !== 'DATA' && stage !== 'END-OF-MESSAGE') {
      errors.push(`${at}: count-at must be rcpt, data or end-of-message`);
      continue;
    }
    const countAt = stage as CountStage;
    if (count === 'bytes' && countAt !== 'END-OF-MESSAGE') {
      errors.push(`${at}: bytes are known only at end-of-message (count-at end-of-message)`);
    }
    if (
      countAt !== 'RCPT' &&
      key.some((k) => k.attribute === 'recipient' || k.attribute === 'recipient_domain')
    ) {
      errors.push(`${at}: a recipient key needs count-at rcpt (a message may have many recipients)`);
    }

    const windows = readWindows(block.values);
    if (windows.length === 0)
      errors.push(`${at}: <policy-limit ${name}> needs at least one rate (e.g. rate 100/m)`);
    const reply = readReply(block.values, null, block.origin);
    const sf = (first<string>(block.values, 'store-failure')?.value ?? 'open').toLowerCase();
    if (sf !== 'open' && sf !== 'closed') errors.push(`${at}: store-failure must be open or closed`);

    const overrides = new Map<string, KeyOverride>();
    for (const child of block.children) {
      if (child.kind !== 'policy-override' || child.name === null) continue;
      const keyName = child.name.toLowerCase().replace(/\s*,\s*/g, ',');
      const childReply = reply ? readReply(child.values, reply, child.origin) : null;
      if (overrides.has(keyName))
        errors.push(`${where(child.origin)}: duplicate <policy-override ${child.name}>`);
      if (!child.values.has('rate') && !child.values.has('action') && !child.values.has('text')) {
        errors.push(
          `${where(child.origin)}: <policy-override ${child.name}> changes nothing (add rate lines)`,
        );
      }
      if (childReply) {
        overrides.set(keyName, {
          ...childReply,
          windows: child.values.has('rate') ? readWindows(child.values) : windows,
        });
      }
    }
    if (!reply || key.length !== keyValue.value.length) continue;
    limits.push({
      name,
      key,
      keyLabel: keyValue.value.join(','),
      count,
      countAt,
      windows,
      storeFailure: sf === 'closed' ? 'closed' : 'open',
      overrides,
      ...reply,
      origin: block.origin,
    });
  }

  const pv = policyBlock?.values ?? new Map();
  const supAction = (first<string>(pv, 'suppression-action')?.value ?? 'REJECT').toUpperCase();
  if (!ACTION_RE.test(supAction))
    errors.push(`${where(policyBlock!.origin)}: suppression-action is not an action`);
  const supFailure = (first<string>(pv, 'suppression-store-failure')?.value ?? 'open').toLowerCase();
  if (supFailure !== 'open' && supFailure !== 'closed') {
    errors.push(`${where(policyBlock!.origin)}: suppression-store-failure must be open or closed`);
  }
  if (errors.length > 0) {
    throw new FreightError('POLICY_CONFIG_INVALID', errors.join('\n'), { lines: errors });
  }
  return {
    limits,
    suppression: {
      enabled: first<boolean>(pv, 'suppression')?.value ?? true,
      action: supAction,
      text: first<string>(pv, 'suppression-text')?.value ?? defaultText(supAction, 'suppressed'),
      storeFailure: supFailure === 'closed' ? 'closed' : 'open',
    },
    snapshotIntervalMs: first<number>(pv, 'snapshot-interval')?.value ?? 1000,
  };
}

/** Windows as written, for texts and stats: `100/m, 5000/d`. */
export function describeWindows(windows: Rate[]): string {
  return windows.length === 0 ? 'unlimited' : windows.map((w) => formatRate(w)).join(', ');
}
