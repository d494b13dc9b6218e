/**
 * The deliverability blocks of freight.conf, declared here so that config knows the whole language;
 * sidecar/deliverability/config.ts turns them into warm-up plans and DNSBL zones.
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
import { type BlockSpec, d } from './schema.js';

export const WARMUP_PLAN = {
  virtualMta: d('virtual-mta', 'string', 'a virtual MTA following this plan', { repeatable: true }),
  provider: d('provider', 'string', 'queue domain this plan caps (none = all)', { repeatable: true }),
  day: d('day', 'string', 'DAY COUNT: messages per day from that day on', { repeatable: true }),
  advanceAt: d('advance-at', 'string', 'cron expression: when the next warm-up day starts', {
    default: '0 0 * * *',
  }),
  holdIfBounceRate: d(
    'hold-if-bounce-rate',
    'ratio',
    "don't advance while the day's bounce rate is above this",
  ),
  holdIfDeferralRate: d(
    'hold-if-deferral-rate',
    'ratio',
    "don't advance while the day's deferral rate is above this",
  ),
  holdMinSamples: d('hold-min-samples', 'int', 'outcomes needed in a day to judge it (fewer: hold)', {
    default: 10,
  }),
};

export const DNSBL = {
  checkSchedule: d('check-schedule', 'string', 'cron expression for the checks', { default: '*/5 * * * *' }),
  disableFor: d('disable-for', 'list', 'domains a listed IP stops sending to (* = all)', { default: ['*'] }),
  virtualMta: d('virtual-mta', 'string', 'virtual MTA whose source IP is checked (default: all)', {
    repeatable: true,
  }),
};

export const DELIVERABILITY_BLOCKS: BlockSpec[] = [
  {
    kind: 'warmup-plan',
    named: 'required',
    description: 'daily sending caps for new source IPs, per virtual MTA and provider',
    directives: Object.values(WARMUP_PLAN),
  },
  {
    kind: 'dnsbl',
    named: 'required',
    description: 'check source IPs against a DNS blocklist zone and stop sending from listed ones',
    directives: Object.values(DNSBL),
  },
];
