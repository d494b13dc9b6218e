/**
 * The deliverability blocks of a loaded config (`<warmup-plan>`, `<dnsbl>`, declared in
 * sidecar/config/deliverability-blocks.ts) as checked warm-up plans and DNSBL zones.
 */
import cron from 'node-cron';
import { FreightError } from '../common/errors.js';
import { DNSBL, WARMUP_PLAN } from '../config/deliverability-blocks.js';
import { blockValue, blockValues } from '../config/extensions.js';
import type { ExtensionBlock, FreightConfig } from '../config/model.js';

export interface WarmupPlan {
  name: string;
  vmtas: string[];
  /** Lower-case queue domains; empty = every provider. */
  providers: string[];
  /** Sorted by day: the cap from `day` until the next entry's day. */
  days: { day: number; cap: number }[];
  advanceAt: string;
  holdIfBounceRate: number | null;
  holdIfDeferralRate: number | null;
  holdMinSamples: number;
}

export interface DnsblZone {
  zone: string;
  checkSchedule: string;
  disableFor: string[];
  /** Empty = every virtual MTA. */
  vmtas: string[];
}

function bad(b: ExtensionBlock, message: string): never {
  const at = b.origin === 'default' ? '' : `${b.origin.file}:${b.origin.line}: `;
  throw new FreightError('DELIV_BAD_CONFIG', `${at}<${b.kind} ${b.name ?? ''}> ${message}`);
}
function checkCron(b: ExtensionBlock, expr: string): string {
  if (!cron.validate(expr)) bad(b, `invalid cron expression '${expr}'`);
  return expr;
}
function checkVmtas(b: ExtensionBlock, config: FreightConfig, vmtas: string[]): string[] {
  for (const v of vmtas) if (!config.virtualMtas.has(v)) bad(b, `undefined virtual-mta '${v}'`);
  return vmtas;
}

/** The `<warmup-plan>` blocks of a loaded config, checked (DELIV_BAD_CONFIG names file:line). */
export function warmupPlans(config: FreightConfig): WarmupPlan[] {
  return config.extensions
    .filter((b) => b.kind === 'warmup-plan')
    .map((b) => {
      const days = blockValues(b, WARMUP_PLAN.day).map((raw) => {
        const m = /^(\d+)\s+(\d+)$/.exec(raw.trim());
        if (!m || Number(m[1]) < 1) bad(b, `day must be 'DAY COUNT' with DAY >= 1, not '${raw}'`);
        return { day: Number(m[1]), cap: Number(m[2]) };
      });
      days.sort((x, y) => x.day - y.day);
      if (days.length === 0) bad(b, 'has no day lines');
      if (days[0]!.day !== 1) bad(b, 'must start at day 1');
      const vmtas = checkVmtas(b, config, blockValues(b, WARMUP_PLAN.virtualMta));
      if (vmtas.length === 0) bad(b, 'names no virtual-mta');
      return {
        name: b.name ?? '',
        vmtas,
        providers: blockValues(b, WARMUP_PLAN.provider).map((p) => p.toLowerCase()),
        days,
        advanceAt: checkCron(b, blockValue(b, WARMUP_PLAN.advanceAt)),
        holdIfBounceRate: blockValue(b, WARMUP_PLAN.holdIfBounceRate),
        holdIfDeferralRate: blockValue(b, WARMUP_PLAN.holdIfDeferralRate),
        holdMinSamples: blockValue(b, WARMUP_PLAN.holdMinSamples),
      };
    });
}

/** The `<dnsbl>` blocks of a loaded config, checked. */
export function dnsblZones(config: FreightConfig): DnsblZone[] {
  return config.extensions
    .filter((b) => b.kind === 'dnsbl')
    .map((b) => ({
      zone: (b.name ?? '').toLowerCase().replace(/\.$/, ''),
      checkSchedule: checkCron(b, blockValue(b, DNSBL.checkSchedule)),
      disableFor: blockValue(b, DNSBL.disableFor).map((x) => x.toLowerCase()),
      vmtas: checkVmtas(b, config, blockValues(b, DNSBL.virtualMta)),
    }));
}
