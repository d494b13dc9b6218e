/**
 * Per-domain Postfix transports rendered from the `<domain>` blocks, so the Postfix path is paced per ISP
 * from the same settings as the engine, whichever path a domain takes:
 *
 * - a domain with `route-via postfix` gets its own transport, a clone of `smtp` in master.cf, with
 *   `<transport>_destination_concurrency_limit` = max-smtp-out and `<transport>_destination_rate_delay`
 *   derived from max-msg-rate in main.cf, and a transport-table entry pointing the domain at it;
 * - a domain with `route-via engine` gets a transport-table entry to the engine's intake listener.
 *
 * Trade-off of the rate delay: Postfix inserts the delay between deliveries to one destination over one
 * transport, in whole seconds, and while it is non-zero deliveries to that destination run one at a time —
 * the concurrency limit then only matters for the connection cache. So a max-msg-rate becomes "one message
 * every ceil(period/count) seconds, one connection": 3500/h renders as 2s (1800/h), never faster than
 * configured; anything faster than 1/s cannot be expressed and renders as 1s. Domains that need more
 * throughput than that should drop max-msg-rate for the Postfix path or move to the engine, which paces
 * with the exact rate and max-smtp-out connections.
 *
 * Nested `<domain>` blocks inside `<virtual-mta>` have no Postfix equivalent (Postfix has one source
 * address per transport) and are not rendered.
 */
import type { DomainBlock, DomainSettings, FreightConfig } from '../config/model.js';

export interface DomainTransports {
  /** Extra master.cf service lines. */
  masterCf: string;
  /** Extra main.cf parameter lines. */
  mainCf: string;
  /** Lines for the static transport table. */
  transportLines: string[];
}

/** Postfix transport settings derived from one domain's effective settings. */
export interface PostfixPacing {
  concurrencyLimit: number;
  /** Seconds between deliveries to the destination; 0 = no delay. */
  rateDelaySeconds: number;
  recipientLimit: number;
  /** smtp_connection_reuse_count_limit (0 = unlimited). */
  reuseCountLimit: number;
  tlsSecurityLevel: 'none' | 'may' | 'encrypt';
}

export function postfixPacing(s: DomainSettings): PostfixPacing {
  const rateDelaySeconds = s.maxMsgRate
    ? Math.max(1, Math.ceil(s.maxMsgRate.perMs / s.maxMsgRate.count / 1000))
    : 0;
  return {
    concurrencyLimit: s.maxSmtpOut,
    rateDelaySeconds: s.maxMsgRate?.count === 0 ? 0 : rateDelaySeconds,
    // With a recipient limit of 1 Postfix applies the rate delay per recipient instead of per domain.
    recipientLimit: rateDelaySeconds > 0 ? Math.max(2, s.maxRcptPerMessage) : s.maxRcptPerMessage,
    reuseCountLimit: s.maxMsgPerConnection,
    tlsSecurityLevel: s.requireStarttls ? 'encrypt' : s.useStarttls ? 'may' : 'none',
  };
}

/** A Postfix service name for a domain pattern: `gmail.com` → `pace_gmail_com`, `*.example.org` → `pace_any_example_org`. */
function transportName(pattern: string, taken: Set<string>): string {
  const base = `pace_${pattern
    .replace(/^\*\./, 'any.')
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_|_$/g, '')}`;
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

/** Transport-table key: exact domains as written, `*.example.org` as `.example.org` (subdomains). */
function tableKey(pattern: string): string {
  return pattern.startsWith('*.') ? pattern.slice(1) : pattern;
}

/** Effective settings of a block itself: a wildcard is resolved through a name only it can match best. */
function settingsOf(config: FreightConfig, block: DomainBlock): DomainSettings {
  const domain = block.pattern.startsWith('*.') ? `freight-wildcard${block.pattern.slice(1)}` : block.pattern;
  return config.domainSettings(domain);
}

function paramLines(prefix: string, p: PostfixPacing): string[] {
  const lines = [`${prefix}_destination_concurrency_limit = ${p.concurrencyLimit}`];
  lines.push(`${prefix}_destination_rate_delay = ${p.rateDelaySeconds}s`);
  lines.push(`${prefix}_destination_recipient_limit = ${p.recipientLimit}`);
  // Postfix's advice with a rate delay: otherwise one failed connection defers the whole destination.
  if (p.rateDelaySeconds > 0) lines.push(`${prefix}_destination_concurrency_failed_cohort_limit = 10`);
  return lines;
}

export function renderDomainTransports(config: FreightConfig): DomainTransports {
  const g = config.global;
  const engineNexthop =
    g.smtpListenerProtocol === 'lmtp'
      ? `freight:inet:${g.smtpListener.host}:${g.smtpListener.port}`
      : `smtp:[${g.smtpListener.host}]:${g.smtpListener.port}`;
  const master: string[] = [];
  const main: string[] = [];
  const table: string[] = [];
  const taken = new Set<string>();

  for (const block of config.domains) {
    if (block.pattern === '*') continue;
    const settings = settingsOf(config, block);
    const key = tableKey(block.pattern);
    const where = block.origin === 'default' ? 'default' : `${block.origin.file}:${block.origin.line}`;
    if (settings.routeVia === 'engine') {
      table.push(`${key} ${engineNexthop}`);
      continue;
    }
    const name = transportName(block.pattern, taken);
    const pacing = postfixPacing(settings);
    master.push(
      `# <domain ${block.pattern}> (${where})`,
      `${name} unix  -       -       n       -       -       smtp`,
      '        -o syslog_name=postfix/$service_name',
      `        -o smtp_connection_reuse_count_limit=${pacing.reuseCountLimit}`,
      `        -o smtp_tls_security_level=${pacing.tlsSecurityLevel}`,
    );
    main.push(`# <domain ${block.pattern}> (${where})`, ...paramLines(name, pacing));
    table.push(`${key} ${name}:${settings.route ?? ''}`);
  }

  // Domains without a block of their own follow `<domain *>` (or the built-in defaults).
  const fallback = config.domainSettings('freight-no-such-domain.invalid');
  if (fallback.routeVia === 'engine') {
    table.push(`* ${engineNexthop}`);
  } else {
    const pacing = postfixPacing(fallback);
    main.push(
      '# <domain *>: every other destination, on the stock smtp transport',
      ...paramLines('smtp', pacing),
    );
    if (fallback.route) table.push(`* smtp:${fallback.route}`);
  }
  return { masterCf: master.join('\n'), mainCf: main.join('\n'), transportLines: table };
}
