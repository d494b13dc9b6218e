/** Converts a directive's raw text into a typed value according to its spec. */
import type { DirectiveSpec } from './schema.js';
import { unquote } from './syntax.js';
import {
  parseBool,
  parseDuration,
  parseDurationList,
  parseHostPort,
  parseInteger,
  parseList,
  parseRate,
  parseSize,
  ValueError,
} from './units.js';

export function parseValue(spec: DirectiveSpec, raw: string): unknown {
  if (raw === '' && spec.kind !== 'string') throw new ValueError(`${spec.name} needs a value`);
  switch (spec.kind) {
    case 'string': {
      const v = unquote(raw);
      if (v === '') throw new ValueError(`${spec.name} needs a value`);
      if (spec.pattern && !spec.pattern.test(v)) throw new ValueError(`invalid value '${v}'`);
      if (spec.choices) {
        const lower = v.toLowerCase();
        if (!spec.choices.includes(lower)) {
          throw new ValueError(
            `must be one of ${spec.choices.join(', ')}, not '${v}'${didYouMean(lower, spec.choices)}`,
          );
        }
        return lower;
      }
      return v;
    }
    case 'int':
      return parseInteger(raw, spec.min ?? 0);
    case 'bool':
      return parseBool(raw);
    case 'duration':
      return parseDuration(raw);
    case 'duration-list':
      return parseDurationList(raw);
    case 'rate':
      return parseRate(raw);
    case 'size':
      return parseSize(raw);
    case 'host-port':
      return parseHostPort(raw);
    case 'list':
      return parseList(raw);
    case 'ratio': {
      const m = /^(\d+(?:\.\d+)?)%$/.exec(raw.trim());
      if (!m) throw new ValueError(`invalid ratio '${raw}' (expected e.g. 5%)`);
      return Number(m[1]) / 100;
    }
  }
}

/** Levenshtein distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

export function didYouMean(name: string, candidates: Iterable<string>): string {
  let best: string | null = null;
  let bestDist = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const dist = editDistance(name, c);
    if (dist < bestDist) {
      best = c;
      bestDist = dist;
    }
  }
  return best !== null && bestDist <= Math.max(2, Math.floor(name.length / 3))
    ? ` (did you mean '${best}'?)`
    : '';
}
