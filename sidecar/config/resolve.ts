/**
 * Effective settings for (domain, vmta): built-in defaults ← `<domain *>` ← most specific matching
 * `<domain>` ← the vmta's nested `<domain>` (most specific match again). Memoised: the scheduler asks often.
 */
import type { DomainBlock, DomainSettings, Origin, VirtualMta } from './model.js';
import { DOMAIN } from './schema.js';

/** Directive name → DomainSettings field. */
const fieldByName = new Map(Object.entries(DOMAIN).map(([field, spec]) => [spec.name, field]));

/** How well a block pattern matches a domain: higher is more specific; -1 = no match. */
export function matchScore(pattern: string, domain: string): number {
  if (pattern === '*') return 0;
  if (pattern === domain) return 10_000 + pattern.length;
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1);
    if (domain.endsWith(suffix)) return 1 + pattern.length;
  }
  return -1;
}

function bestBlock(blocks: DomainBlock[], domain: string): DomainBlock[] {
  const chain: DomainBlock[] = [];
  const star = blocks.find((b) => b.pattern === '*');
  if (star) chain.push(star);
  let best: DomainBlock | null = null;
  let bestScore = 0;
  for (const b of blocks) {
    const s = matchScore(b.pattern, domain);
    if (s > bestScore) {
      best = b;
      bestScore = s;
    }
  }
  if (best) chain.push(best);
  return chain;
}

export function makeDomainResolver(
  domains: DomainBlock[],
  virtualMtas: Map<string, VirtualMta>,
): (domain: string, vmta?: string) => DomainSettings {
  const cache = new Map<string, DomainSettings>();
  return (rawDomain: string, vmta?: string) => {
    const domain = rawDomain.toLowerCase();
    const key = `${domain}\u0000${vmta ?? ''}`;
    const hit = cache.get(key);
    if (hit) return hit;
    const chain = bestBlock(domains, domain);
    const nested = vmta ? virtualMtas.get(vmta)?.domainBlocks : undefined;
    if (nested) chain.push(...bestBlock(nested, domain));
    const settings: Record<string, unknown> = {};
    const origins: Record<string, Origin> = {};
    for (const [field, spec] of Object.entries(DOMAIN)) {
      settings[field] = spec.default ?? null;
      origins[spec.name] = 'default';
    }
    for (const block of chain) {
      for (const [name, { value, origin }] of block.values) {
        settings[fieldByName.get(name)!] = value;
        origins[name] = origin;
      }
    }
    // Every field is set above, from its declaration's default or from a block parsed by that declaration.
    const result = { ...settings, origins } as DomainSettings;
    if (cache.size > 10_000) cache.clear();
    cache.set(key, result);
    return result;
  };
}
