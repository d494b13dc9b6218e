/**
 * PowerMTA value syntax: durations (`15m`, `4d12h`, `90s`, bare number = seconds), rates (`3500/h`,
 * `100/10m`, `unlimited`), sizes (`20M`, `512K`), booleans, lists. Each parser throws a plain
 * `ValueError` whose message the config builder turns into `file:line: …`.
 */
import { isIP } from 'node:net';
import type { HostPort, Rate } from './value-types.js';

export class ValueError extends Error {}

const durationUnits: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Duration in milliseconds. A bare number means seconds, as in PowerMTA. */
export function parseDuration(text: string): number {
  const s = text.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(s)) {
    const ms = Math.round(Number(s) * 1000);
    if (!Number.isSafeInteger(ms)) throw new ValueError(`duration '${text}' is too long`);
    return ms;
  }
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * durationUnits[m[2]!]!;
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== s.length) {
    throw new ValueError(`invalid duration '${text}' (expected e.g. 30s, 15m, 4d12h)`);
  }
  if (!Number.isSafeInteger(Math.round(total))) throw new ValueError(`duration '${text}' is too long`);
  return Math.round(total);
}

/** `3500/h`, `100/10m`, `20/s`; `unlimited` → null. */
export function parseRate(text: string): Rate | null {
  const s = text.trim().toLowerCase();
  if (s === 'unlimited' || s === '0') return null;
  const m = /^(\d+)\/(\d*(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(s);
  // `100/` has neither a period nor a unit: reject it rather than silently reading it as per second.
  if (!m || (m[2] === '' && m[3] === undefined)) {
    throw new ValueError(`invalid rate '${text}' (expected e.g. 3500/h or 100/10m)`);
  }
  const count = Number(m[1]);
  if (!Number.isSafeInteger(count)) throw new ValueError(`rate '${text}' is too large`);
  const n = m[2] === '' ? 1 : Number(m[2]);
  const unit = m[3] ?? 's';
  if (!(n > 0)) throw new ValueError(`invalid rate '${text}': the period must be greater than zero`);
  const perMs = n * durationUnits[unit]!;
  if (perMs < 1 || !Number.isSafeInteger(Math.round(perMs))) {
    throw new ValueError(`invalid rate '${text}': the period must be between 1ms and a few centuries`);
  }
  return { count, perMs: Math.round(perMs) };
}

const sizeUnits: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Size in bytes: `20M`, `512K`, `1G`, `1000`. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$/i.exec(text.trim());
  if (!m) throw new ValueError(`invalid size '${text}' (expected e.g. 20M, 512K, 1G)`);
  const bytes = Math.round(Number(m[1]) * sizeUnits[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) throw new ValueError(`size '${text}' is too large`);
  return bytes;
}

export function parseBool(text: string): boolean {
  const s = text.trim().toLowerCase();
  if (s === 'yes' || s === 'true' || s === 'on' || s === '1') return true;
  if (s === 'no' || s === 'false' || s === 'off' || s === '0') return false;
  throw new ValueError(`invalid boolean '${text}' (expected yes or no)`);
}

export function parseInteger(text: string, min = 0): number {
  const s = text.trim();
  if (!/^-?\d+$/.test(s)) throw new ValueError(`invalid number '${text}'`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new ValueError(`number '${text}' is too large`);
  if (n < min) throw new ValueError(`${n} is below the minimum ${min}`);
  return n;
}

/** Comma-separated list; blanks around items ignored. */
export function parseList(text: string): string[] {
  const items = text
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  if (items.length === 0) throw new ValueError('empty list');
  return items;
}

export function parseDurationList(text: string): number[] {
  return parseList(text).map(parseDuration);
}

/** `127.0.0.1:2526`, `[::1]:2526`. Host is required; only the port is numeric. */
export function parseHostPort(text: string): HostPort {
  const s = text.trim();
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:\s]+):(\d+)$/.exec(s);
  if (!m) throw new ValueError(`invalid address '${text}' (expected host:port, e.g. 127.0.0.1:2526)`);
  if (isIP(m[1]!) === 0 && !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(m[1]!)) {
    throw new ValueError(`invalid address '${text}': '${m[1]}' is neither an IP address nor a host name`);
  }
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new ValueError(`invalid port ${port}`);
  return { host: m[1]!, port };
}

/** Human form of a duration for `config show`: 4d12h, 15m, 90s. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

export function formatRate(rate: Rate | null): string {
  if (!rate) return 'unlimited';
  const unit = ({ 1000: 's', 60000: 'm', 3600000: 'h', 86400000: 'd' } as Record<number, string>)[rate.perMs];
  return unit ? `${rate.count}/${unit}` : `${rate.count}/${formatDuration(rate.perMs)}`;
}
