/**
 * Config blocks of the deliverability component, registered in EXTENSION_BLOCKS:
 *
 *   <warmup-plan new-ips>
 *     virtual-mta mta3              # repeatable: the vmtas that follow this plan
 *     provider gmail.com            # repeatable: queue domains it caps (none = every provider)
 *     day 1 50                      # repeatable: messages per day from day N on
 *     day 2 100
 *     advance-at "0 0 * * *"        # cron: when the next day starts
 *     hold-if-bounce-rate 5%        # stay on the same day while the day's rates are above these
 *     hold-if-deferral-rate 20%
 *     hold-min-samples 10           # fewer outcomes than this in a day: hold (too little to judge)
 *   </warmup-plan>
 *
 *   <dnsbl zen.spamhaus.org>
 *     check-schedule "*\/5 * * * *"  # cron
 *     disable-for gmail.com,yahoo.com  # domains a listed IP stops sending to (default *: all)
 *     virtual-mta mta1              # repeatable: vmtas whose IPs are checked (default: all)
 *   </dnsbl>
 */
import cron from 'node-cron';
import { FreightError } from '../common/errors.js';
import type { BlockSpec } from '../config/extensions.js';
import type { ExtensionBlock, FreightConfig } from '../config/model.js';
import type { DirectiveSpec } from '../config/schema.js';

const d = (
  name: string,
  kind: DirectiveSpec['kind'],
  description: string,
  extra: Partial<DirectiveSpec> = {},
) => ({ name, kind, description, ...extra }) as DirectiveSpec;

export const DELIVERABILITY_BLOCKS: BlockSpec[] = [
  {
    kind: 'warmup-plan',
    named: 'required',
    description: 'daily sending caps for new source IPs, per virtual MTA and provider',
    directives: [
      d('virtual-mta', 'string', 'a virtual MTA following this plan', { repeatable: true }),
      d('provider', 'string', 'queue domain this plan caps (none = all)', { repeatable: true }),
      d('day', 'string', 'DAY COUNT: messages per day from that day on', { repeatable: true }),
      d('advance-at', 'string', 'cron expression: when the next warm-up day starts', {
        default: '0 0 * * *',
      }),
      d('hold-if-bounce-rate', 'ratio', "don't advance while the day's bounce rate is above this"),
      d('hold-if-deferral-rate', 'ratio', "don't advance while the day's deferral rate is above this"),
      d('hold-min-samples', 'int', 'outcomes needed in a day to judge it (fewer: hold)', { default: 10 }),
    ],
  },
  {
    kind: 'dnsbl',
    named: 'required',
    description: 'check source IPs against a DNS blocklist zone and stop sending from listed ones',
    directives: [
      d('check-schedule', 'string', 'cron expression for the checks', { default: '*/5 * * * *' }),
      d('disable-for', 'list', 'domains a listed IP stops sending to (* = all)', { default: ['*'] }),
      d('virtual-mta', 'string', 'virtual MTA whose source IP is checked (default: all)', {
        repeatable: true,
      }),
    ],
  },
];

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

function all(b: ExtensionBlock, name: string): unknown[] {
  return (b.values.get(name) ?? []).map((v) => v.value);
}
function one<T>(b: ExtensionBlock, name: string, fallback: T): T {
  const v = b.values.get(name)?.[0];
  return v === undefined ? fallback : (v.value as T);
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
      const days = all(b, 'day').map((raw) => {
        const m = /^(\d+)\s+(\d+)$/.exec(String(raw).trim());
        if (!m || Number(m[1]) < 1) bad(b, `day must be 'DAY COUNT' with DAY >= 1, not '${raw}'`);
        return { day: Number(m[1]), cap: Number(m[2]) };
      });
      days.sort((x, y) => x.day - y.day);
      if (days.length === 0) bad(b, 'has no day lines');
      if (days[0]!.day !== 1) bad(b, 'must start at day 1');
      const vmtas = checkVmtas(b, config, all(b, 'virtual-mta').map(String));
      if (vmtas.length === 0) bad(b, 'names no virtual-mta');
      return {
        name: b.name ?? '',
        vmtas,
        providers: all(b, 'provider').map((p) => String(p).toLowerCase()),
        days,
        advanceAt: checkCron(b, one(b, 'advance-at', '0 0 * * *')),
        holdIfBounceRate: one<number | null>(b, 'hold-if-bounce-rate', null),
        holdIfDeferralRate: one<number | null>(b, 'hold-if-deferral-rate', null),
        holdMinSamples: one(b, 'hold-min-samples', 10),
      };
    });
}

/** The `<dnsbl>` blocks of a loaded config, checked. */
export function dnsblZones(config: FreightConfig): DnsblZone[] {
  return config.extensions
    .filter((b) => b.kind === 'dnsbl')
    .map((b) => ({
      zone: (b.name ?? '').toLowerCase().replace(/\.$/, ''),
      checkSchedule: checkCron(b, one(b, 'check-schedule', '*/5 * * * *')),
      disableFor: one<string[]>(b, 'disable-for', ['*']).map((x) => x.toLowerCase()),
      vmtas: checkVmtas(b, config, all(b, 'virtual-mta').map(String)),
    }));
}
