/**
 * `freight ramp render`: the same per-domain split as a static transport_maps value, for shops that cannot
 * run the socketmap server. Each ramped domain becomes
 *   pipemap:{inline:{DOMAIN=ramp}, randmap:{ENGINE, POSTFIX, POSTFIX, …}}
 * (the inline table matches the domain, the randmap picks one entry uniformly at random), placed before
 * the static transport table.
 *
 * Caveat, printed into the output too: randmap chooses again on every lookup, so the split is only
 * statistical and NOT sticky — a recipient deferred on one path can be retried on the other. That is
 * safe (a deferred recipient was not delivered, so it is still delivered once), but the engine's and
 * Postfix's retry schedules and accounting both see it. Shares are rounded to whole percent (at most
 * 100 randmap entries).
 */
import type { RampShare } from './state.js';

export interface RandmapOptions {
  /** Transport answered for engine-routed recipients (`freight:inet:HOST:PORT`). */
  engineTransport: string;
  /** Transport for the Postfix path; default `smtp:` (Postfix's smtp to the domain's MX). */
  postfixTransport?: string;
  /** Tables that follow the ramp in transport_maps, e.g. `texthash:/etc/postfix/transport`. */
  fallbackMaps: string[];
}

export interface RandmapResult {
  /** main.cf text: a commented `transport_maps = …` setting. */
  text: string;
  /** Domains whose share was rounded to a whole percent, with the share used. */
  rounded: Array<{ domain: string; percent: number; used: number }>;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The table for one domain, or null at 0 % (the domain then simply falls through to the static table). */
export function domainTable(domain: string, percent: number, engine: string, postfix: string): string | null {
  if (percent <= 0) return null;
  if (percent >= 100) return `inline:{${domain}=${engine}}`;
  const g = gcd(percent, 100);
  const entries = [
    ...Array.from({ length: percent / g }, () => engine),
    ...Array.from({ length: (100 - percent) / g }, () => postfix),
  ];
  return `pipemap:{inline:{${domain}=ramp}, randmap:{${entries.join(', ')}}}`;
}

export function renderRandmap(shares: RampShare[], opts: RandmapOptions): RandmapResult {
  const postfix = opts.postfixTransport ?? 'smtp:';
  const rounded: RandmapResult['rounded'] = [];
  const tables: string[] = [];
  for (const s of shares) {
    const used = Math.round(s.percent);
    if (used !== s.percent) rounded.push({ domain: s.domain, percent: s.percent, used });
    const table = domainTable(s.domain, used, opts.engineTransport, postfix);
    if (table) tables.push(table);
  }
  const lines = [
    '# Rendered by `freight ramp render` from the ramp shares. Merge into main.cf, then `postfix reload`.',
    '# CAVEAT: randmap picks a path again on every delivery attempt, so this split is statistical and',
    '# NOT sticky: a recipient deferred on one path may be retried on the other (it is still delivered',
    '# once). Run `freight ramp` (socketmap, ramp-enabled yes) for a sticky per-recipient split.',
    ...shares.map((s) => {
      const r = rounded.find((x) => x.domain === s.domain);
      return `#   ${s.domain}: ${r ? `${r.used}% (rounded from ${s.percent}%)` : `${s.percent}%`} to the engine`;
    }),
    `transport_maps =\n    ${[...tables, ...opts.fallbackMaps].join(',\n    ')}`,
    '',
  ];
  return { text: lines.join('\n'), rounded };
}
