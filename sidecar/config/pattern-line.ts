/**
 * One `<smtp-pattern-list>` line: `reply /regex/ action[,action…]`, with PowerMTA's actions plus Freight's
 * ratio trigger (`threshold=5%/10m,min-samples=50`).
 */
import type { PatternAction, SmtpPattern } from './model.js';
import { parseRegexLiteral } from './regex.js';
import type { DirectiveNode } from './syntax.js';
import { parseDuration, ValueError } from './units.js';

const SIMPLE: Record<string, PatternAction> = {
  'bounce-rcpt': { kind: 'bounce-rcpt' },
  'bounce-queue': { kind: 'bounce-queue' },
  'skip-mx': { kind: 'skip-mx' },
  'defer-queue': { kind: 'defer-queue' },
};

export function parsePatternLine(node: DirectiveNode): SmtpPattern {
  if (node.name !== 'reply') {
    throw new ValueError(`expected 'reply /regex/ action', found '${node.name || node.value}'`);
  }
  const { regex, rest } = parseRegexLiteral(node.value);
  if (rest === '') throw new ValueError('pattern has no action');
  const actions: PatternAction[] = [];
  let minSamples: number | null = null;
  let threshold: { ratio: number; windowMs: number } | null = null;
  for (const item of rest.split(',').map((s) => s.trim())) {
    const [key, value] = item.split('=', 2) as [string, string | undefined];
    if (key === 'mode') {
      if (value !== 'backoff' && value !== 'normal')
        throw new ValueError(`mode must be backoff or normal, not '${value}'`);
      actions.push({ kind: 'mode', mode: value });
    } else if (key === 'disable-source-ip') {
      actions.push({ kind: 'disable-source-ip', reenableAfter: null });
    } else if (key === 'reenable-after') {
      const last = actions[actions.length - 1];
      if (last?.kind !== 'disable-source-ip')
        throw new ValueError('reenable-after must follow disable-source-ip');
      last.reenableAfter = parseDuration(value ?? '');
    } else if (key === 'threshold') {
      const m = /^(\d+(?:\.\d+)?)%\/(.+)$/.exec(value ?? '');
      if (!m) throw new ValueError(`threshold must look like 5%/10m, not '${value}'`);
      threshold = { ratio: Number(m[1]) / 100, windowMs: parseDuration(m[2]!) };
    } else if (key === 'min-samples') {
      if (!/^\d+$/.test(value ?? '')) throw new ValueError(`min-samples must be a number, not '${value}'`);
      minSamples = Number(value);
    } else if (SIMPLE[key] && value === undefined) {
      actions.push(SIMPLE[key]!);
    } else {
      throw new ValueError(`unknown pattern action '${item}'`);
    }
  }
  if (minSamples !== null && !threshold) throw new ValueError('min-samples needs threshold=');
  if (threshold) actions.push({ kind: 'threshold', ...threshold, minSamples: minSamples ?? 1 });
  if (!actions.some((a) => a.kind !== 'threshold'))
    throw new ValueError('pattern has no action besides threshold');
  return { on: 'reply', pattern: regex, actions, origin: { file: node.file, line: node.line } };
}
