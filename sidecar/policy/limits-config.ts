/**
 * What the `<policy-limit NAME>` and `<policy>` blocks of freight.conf mean (their directives are declared
 * in sidecar/config/policy-blocks.ts): typed limits and the suppression check's settings. Every problem is
 * reported as `file:line: reason`, all of them at once.
 */
import { FreightError } from '../common/errors.js';
import { blockSetting, blockValue, blockValues, type Setting } from '../config/extensions.js';
import type { ExtensionBlock, FreightConfig, Origin, Rate } from '../config/model.js';
import { POLICY, POLICY_LIMIT, POLICY_OVERRIDE } from '../config/policy-blocks.js';
import { formatRate } from '../config/units.js';

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

function where(origin: Origin): string {
  return origin === 'default' ? 'freight.conf' : `${origin.file}:${origin.line}`;
}

/** `action` and `text` of a limit, or of an override that inherits what it does not set from `fallback`. */
function readReply(block: ExtensionBlock, fallback: LimitReply | null, errors: string[]): LimitReply | null {
  const a = blockSetting(block, POLICY_OVERRIDE.action);
  const action = a ? a.value.toUpperCase() : (fallback?.action ?? 'DEFER_IF_PERMIT');
  if (!ACTION_RE.test(action)) {
    errors.push(
      `${where(a?.origin ?? block.origin)}: action must be DEFER_IF_PERMIT, DEFER, REJECT, 4NN or 5NN`,
    );
    return null;
  }
  const t = blockSetting(block, POLICY_OVERRIDE.text);
  const text = t ? t.value : a || !fallback ? defaultText(action, 'limit') : fallback.text;
  return { action, text };
}

function readWindows(block: ExtensionBlock): Rate[] {
  return blockValues(block, POLICY_LIMIT.rate).filter((r): r is Rate => r !== null);
}

/** The `key` parts; a part that cannot be read is reported and left out. */
function readKey(block: ExtensionBlock, keyValue: Setting<string[]>, errors: string[]): KeyPart[] {
  const ipv6Prefix = blockValue(block, POLICY_LIMIT.ipv6Prefix) ?? 64;
  const key: KeyPart[] = [];
  for (const raw of keyValue.value) {
    const m = /^([a-z_]+)(?:\/(\d+))?$/.exec(raw.toLowerCase());
    if (!m || !KEY_ATTRIBUTES.has(m[1]!)) {
      errors.push(`${where(keyValue.origin)}: unknown key '${raw}' (use ${[...KEY_ATTRIBUTES].join(', ')})`);
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
  return key;
}

/** What is counted and when; null when either cannot be read. */
function readCounting(
  block: ExtensionBlock,
  key: KeyPart[],
  errors: string[],
): { count: CountUnit; countAt: CountStage } | null {
  const at = where(block.origin);
  const count = (blockValue(block, POLICY_LIMIT.count) ?? 'recipients').toLowerCase();
  if (count !== 'recipients' && count !== 'messages' && count !== 'bytes') {
    errors.push(`${at}: count must be recipients, messages or bytes`);
    return null;
  }
  const countAt = (
    blockValue(block, POLICY_LIMIT.countAt) ?? (count === 'bytes' ? 'end-of-message' : 'rcpt')
  ).toUpperCase();
  if (countAt !== 'RCPT' && countAt !== 'DATA' && countAt !== 'END-OF-MESSAGE') {
    errors.push(`${at}: count-at must be rcpt, data or end-of-message`);
    return null;
  }
  if (count === 'bytes' && countAt !== 'END-OF-MESSAGE') {
    errors.push(`${at}: bytes are known only at end-of-message (count-at end-of-message)`);
  }
  if (
    countAt !== 'RCPT' &&
    key.some((k) => k.attribute === 'recipient' || k.attribute === 'recipient_domain')
  ) {
    errors.push(`${at}: a recipient key needs count-at rcpt (a message may have many recipients)`);
  }
  return { count, countAt };
}

/** The `<policy-override KEY>` blocks: per key value, the limit's reply and windows where not overridden. */
function readOverrides(
  block: ExtensionBlock,
  reply: LimitReply | null,
  windows: Rate[],
  errors: string[],
): Map<string, KeyOverride> {
  const overrides = new Map<string, KeyOverride>();
  for (const child of block.children) {
    if (child.kind !== 'policy-override' || child.name === null) continue;
    const keyName = child.name.toLowerCase().replace(/\s*,\s*/g, ',');
    const childReply = reply ? readReply(child, reply, errors) : null;
    if (overrides.has(keyName))
      errors.push(`${where(child.origin)}: duplicate <policy-override ${child.name}>`);
    const rates = blockSetting(child, POLICY_OVERRIDE.rate);
    if (
      !rates &&
      !blockSetting(child, POLICY_OVERRIDE.action) &&
      !blockSetting(child, POLICY_OVERRIDE.text)
    ) {
      errors.push(`${where(child.origin)}: <policy-override ${child.name}> changes nothing (add rate lines)`);
    }
    if (childReply) overrides.set(keyName, { ...childReply, windows: rates ? readWindows(child) : windows });
  }
  return overrides;
}

/** One `<policy-limit NAME>`; null when it cannot be used (its problems are in `errors`). */
function readLimit(block: ExtensionBlock & { name: string }, errors: string[]): PolicyLimit | null {
  const at = where(block.origin);
  const name = block.name;
  const keyValue = blockSetting(block, POLICY_LIMIT.key);
  if (!keyValue) {
    errors.push(`${at}: <policy-limit ${name}> needs a key (e.g. key sasl_username)`);
    return null;
  }
  const key = readKey(block, keyValue, errors);
  const counting = readCounting(block, key, errors);
  if (!counting) return null;
  const windows = readWindows(block);
  if (windows.length === 0)
    errors.push(`${at}: <policy-limit ${name}> needs at least one rate (e.g. rate 100/m)`);
  const reply = readReply(block, null, errors);
  const storeFailure = (blockValue(block, POLICY_LIMIT.storeFailure) ?? 'open').toLowerCase();
  if (storeFailure !== 'open' && storeFailure !== 'closed')
    errors.push(`${at}: store-failure must be open or closed`);
  const overrides = readOverrides(block, reply, windows, errors);
  if (!reply || key.length !== keyValue.value.length) return null;
  return {
    name,
    key,
    keyLabel: keyValue.value.join(','),
    ...counting,
    windows,
    storeFailure: storeFailure === 'closed' ? 'closed' : 'open',
    overrides,
    ...reply,
    origin: block.origin,
  };
}

/** No `<policy>` block: every setting at its default. */
const NO_POLICY_BLOCK: ExtensionBlock = {
  kind: 'policy',
  name: null,
  values: new Map(),
  children: [],
  origin: 'default',
};

/** The `<policy>` block's suppression check. */
function readSuppression(block: ExtensionBlock, errors: string[]): SuppressionSettings {
  const action = (blockValue(block, POLICY.suppressionAction) ?? 'REJECT').toUpperCase();
  if (!ACTION_RE.test(action)) errors.push(`${where(block.origin)}: suppression-action is not an action`);
  const storeFailure = (blockValue(block, POLICY.suppressionStoreFailure) ?? 'open').toLowerCase();
  if (storeFailure !== 'open' && storeFailure !== 'closed') {
    errors.push(`${where(block.origin)}: suppression-store-failure must be open or closed`);
  }
  return {
    enabled: blockValue(block, POLICY.suppression) ?? true,
    action,
    text: blockValue(block, POLICY.suppressionText) ?? defaultText(action, 'suppressed'),
    storeFailure: storeFailure === 'closed' ? 'closed' : 'open',
  };
}

/** Turn the parsed blocks into settings; every problem is reported as `file:line: reason`. */
export function buildPolicySettings(config: Pick<FreightConfig, 'extensions'>): PolicySettings {
  const errors: string[] = [];
  const limits: PolicyLimit[] = [];
  const names = new Set<string>();
  let policyBlock: ExtensionBlock | null = null;
  for (const block of config.extensions) {
    if (block.kind === 'policy') {
      if (policyBlock) errors.push(`${where(block.origin)}: only one <policy> block is allowed`);
      policyBlock = block;
      continue;
    }
    if (block.kind !== 'policy-limit' || block.name === null) continue;
    if (names.has(block.name)) errors.push(`${where(block.origin)}: duplicate <policy-limit ${block.name}>`);
    names.add(block.name);
    const limit = readLimit({ ...block, name: block.name }, errors);
    if (limit) limits.push(limit);
  }
  const policy = policyBlock ?? NO_POLICY_BLOCK;
  const suppression = readSuppression(policy, errors);
  const snapshotIntervalMs = blockValue(policy, POLICY.snapshotInterval) ?? 1000;
  if (errors.length > 0) {
    throw new FreightError('POLICY_CONFIG_INVALID', errors.join('\n'), { lines: errors });
  }
  return { limits, suppression, snapshotIntervalMs };
}

/** Windows as written, for texts and stats: `100/m, 5000/d`. */
export function describeWindows(windows: Rate[]): string {
  return windows.length === 0 ? 'unlimited' : windows.map((w) => formatRate(w)).join(', ');
}
