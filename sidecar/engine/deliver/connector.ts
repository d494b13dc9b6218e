/**
 * Opens a session for a queue: resolve the destination's MX plan, then try each MX host and each of
 * its addresses in order until one greets and accepts EHLO. A refused or silent host moves on to the
 * next; a 421 greeting does so only when smtp-421-means-mx-unavailable says so.
 */
import { isIP } from 'node:net';
import type { DomainSettings } from '../../config/model.js';
import type { DnsResolver } from '../../dns/resolver.js';
import { planMx } from './mx.js';
import { OutboundSession, SessionOpenError, type SessionOptions } from './session.js';

export interface SessionTimeouts {
  connectMs: number;
  greetingMs: number;
  commandMs: number;
  transactionMs: number;
}

export const DEFAULT_TIMEOUTS: SessionTimeouts = {
  connectMs: 30_000,
  greetingMs: 60_000,
  commandMs: 300_000,
  transactionMs: 600_000,
};

export type ConnectResult =
  | { kind: 'session'; session: OutboundSession }
  /** The destination does not accept mail: bounce. */
  | { kind: 'permanent'; code: number; reply: string }
  /** No host could be reached (or DNS failed): defer. `reply` is the last remote refusal or a local one. */
  | { kind: 'temporary'; code: number; reply: string; remoteRefused: boolean };

/** Where the connection comes from: the virtual MTA's source IP (null: the OS picks) and EHLO name. */
export interface ConnectSource {
  sourceIp: string | null;
  ehlo: string;
}

export interface ConnectRequest {
  resolver: DnsResolver;
  route: ConnectSource;
  settings: DomainSettings;
  mxDomain: string;
  port: number;
  timeouts: SessionTimeouts;
  skipMx: ReadonlySet<string> | null;
  random: () => number;
}

export async function connect(req: ConnectRequest): Promise<ConnectResult> {
  const { route, settings } = req;
  const family = route.sourceIp ? isIP(route.sourceIp) : 0;
  const families = new Set<4 | 6>(family === 6 ? [6] : family === 4 ? [4] : [4, 6]);
  const plan = await planMx(req.resolver, req.mxDomain, {
    bounceUponNoMx: settings.bounceUponNoMx,
    families,
    random: req.random,
  });
  if (plan.kind === 'permanent')
    return { kind: 'permanent', code: 550, reply: `550 ${plan.status} ${plan.diag}` };
  if (plan.kind === 'temporary') {
    return { kind: 'temporary', code: 451, reply: `451 ${plan.status} ${plan.diag}`, remoteRefused: false };
  }
  let hosts = plan.hosts;
  if (req.skipMx && req.skipMx.size > 0) {
    const rest = hosts.filter((h) => !req.skipMx?.has(h.name));
    if (rest.length > 0) hosts = rest;
  }
  let last: SessionOpenError | null = null;
  for (const host of hosts) {
    for (const address of host.addresses) {
      const opts: SessionOptions = {
        address,
        port: req.port,
        mxName: host.name,
        localAddress: route.sourceIp,
        ehlo: route.ehlo,
        useStarttls: settings.useStarttls,
        requireStarttls: settings.requireStarttls,
        connectTimeoutMs: req.timeouts.connectMs,
        greetingTimeoutMs: req.timeouts.greetingMs,
        commandTimeoutMs: req.timeouts.commandMs,
        transactionTimeoutMs: req.timeouts.transactionMs,
      };
      try {
        return { kind: 'session', session: await OutboundSession.open(opts) };
      } catch (err) {
        if (!(err instanceof SessionOpenError)) throw err;
        last = err;
        if (err.code === 421 && !settings.smtp421MeansMxUnavailable) {
          return {
            kind: 'temporary',
            code: 421,
            reply: err.reply ?? '421 4.4.2 service not available',
            remoteRefused: true,
          };
        }
      }
    }
  }
  if (last?.reply && last.code) {
    const code = last.code >= 500 ? 451 : last.code;
    // A 5xx greeting is a host refusing service, not a verdict on the recipients: defer.
    return {
      kind: 'temporary',
      code,
      reply: code === last.code ? last.reply : `451 4.4.2 ${last.reply}`,
      remoteRefused: true,
    };
  }
  return {
    kind: 'temporary',
    code: 451,
    reply: `451 4.4.1 no MX host of ${req.mxDomain} answered${last ? `: ${last.message}` : ''}`,
    remoteRefused: false,
  };
}
