/**
 * What `freight config show` prints: each directive's effective value in the operator's notation
 * (`3500/h`, `15m,30m,1h`) with where it came from (`file:line` or `default`).
 */
import { relative } from 'node:path';
import { GLOBAL } from './globals.js';
import type { FreightConfig, HostPort, Origin, Rate } from './model.js';
import { type DirectiveSpec, DOMAIN } from './schema.js';
import { formatDuration, formatRate } from './units.js';

export interface ShownSetting {
  directive: string;
  /** The typed value (milliseconds, bytes, { count, perMs } …), null when unset. */
  value: unknown;
  /** The value written the way freight.conf spells it. */
  text: string;
  origin: string;
}

/** `file:line` relative to the working directory when the file is below it; else absolute. */
export function formatOrigin(origin: Origin | undefined): string {
  if (!origin || origin === 'default') return 'default';
  const rel = relative(process.cwd(), origin.file);
  const file = rel !== '' && !rel.startsWith('..') ? rel : origin.file;
  return `${file}:${origin.line}`;
}

export function formatSetting(spec: DirectiveSpec, value: unknown): string {
  if (value === null || value === undefined) return spec.kind === 'rate' ? 'unlimited' : '-';
  switch (spec.kind) {
    case 'bool':
      return value ? 'yes' : 'no';
    case 'duration':
      return formatDuration(value as number);
    case 'duration-list':
      return (value as number[]).map(formatDuration).join(',');
    case 'rate':
      return formatRate(value as Rate);
    case 'host-port': {
      const hp = value as HostPort;
      return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
    }
    case 'list':
      return (value as string[]).join(',');
    case 'ratio':
      return `${Math.round((value as number) * 10_000) / 100}%`;
    default:
      return String(value);
  }
}

/** Effective settings for (domain, vmta), one row per domain directive. */
export function domainSettingRows(config: FreightConfig, domain: string, vmta?: string): ShownSetting[] {
  const settings = config.domainSettings(domain, vmta);
  return Object.entries(DOMAIN).map(([field, spec]) => {
    const value: unknown = settings[field as keyof typeof DOMAIN] ?? null;
    return {
      directive: spec.name,
      value,
      text: formatSetting(spec, value),
      origin: formatOrigin(settings.origins[spec.name]),
    };
  });
}

/** Global settings, one row per global directive; the API key itself is never printed. */
export function globalSettingRows(config: FreightConfig, origins: Record<string, Origin>): ShownSetting[] {
  return Object.entries(GLOBAL).map(([field, spec]) => {
    let value: unknown = config.global[field as keyof typeof GLOBAL] ?? null;
    if (spec.name === 'http-api-key' && value !== null) value = '(set)';
    return {
      directive: spec.name,
      value,
      text: formatSetting(spec, value),
      origin: formatOrigin(origins[spec.name]),
    };
  });
}
