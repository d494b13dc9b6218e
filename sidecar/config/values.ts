/**
 * The value kinds of freight.conf and the parser each one gives a directive: raw text in, a typed value out,
 * or a ValueError saying why not. Directive declarations (schema.ts) take their parser from here.
 */

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
import type { HostPort, Rate } from './value-types.js';

/** What each value kind parses to. */
export interface KindValue {
  string: string;
  int: number;
  bool: boolean;
  duration: number;
  'duration-list': number[];
  rate: Rate | null;
  size: number;
  'host-port': HostPort;
  list: string[];
  ratio: number;
}

export type ValueKind = keyof KindValue;

/** The checks a declaration may add to its kind's parser. */
export interface ValueRules {
  name: string;
  /** Lower bound for 'int'. */
  min?: number;
  /** Shape a 'string' value must have. */
  pattern?: RegExp;
  /** Allowed values for a 'string' directive (case-insensitive; stored lower-case). */
  choices?: readonly string[];
}

function parseString(raw: string, rules: ValueRules): string {
  const v = unquote(raw);
  if (v === '') throw new ValueError(`${rules.name} needs a value`);
  if (rules.pattern && !rules.pattern.test(v)) throw new ValueError(`invalid value '${v}'`);
  if (!rules.choices) return v;
  const lower = v.toLowerCase();
  if (!rules.choices.includes(lower)) {
    throw new ValueError(
      `must be one of ${rules.choices.join(', ')}, not '${v}'${didYouMean(lower, rules.choices)}`,
    );
  }
  return lower;
}

function parseRatio(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)%$/.exec(raw.trim());
  if (!m) throw new ValueError(`invalid ratio '${raw}' (expected e.g. 5%)`);
  return Number(m[1]) / 100;
}

const PARSERS: { [K in ValueKind]: (raw: string, rules: ValueRules) => KindValue[K] } = {
  string: parseString,
  int: (raw, rules) => parseInteger(raw, rules.min ?? 0),
  bool: parseBool,
  duration: parseDuration,
  'duration-list': parseDurationList,
  rate: parseRate,
  size: parseSize,
  'host-port': parseHostPort,
  list: parseList,
  ratio: parseRatio,
};

/** The parser of one declared directive: its kind's parser with the declaration's own checks. */
export function kindParser<K extends ValueKind>(kind: K, rules: ValueRules): (raw: string) => KindValue[K] {
  const parse = PARSERS[kind];
  return (raw) => {
    if (raw === '' && kind !== 'string') throw new ValueError(`${rules.name} needs a value`);
    return parse(raw, rules);
  };
}

/** A directive's raw text through its declared parser. */
export function parseValue(spec: { parse(raw: string): unknown }, raw: string): unknown {
  return spec.parse(raw);
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
