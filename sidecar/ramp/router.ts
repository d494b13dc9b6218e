/**
 * What the ramp answers for one socketmap lookup. Postfix asks with full recipient addresses (and with
 * `*` and sender addresses, which are not ours to route): a recipient of a domain with a share gets the
 * engine transport if its stable bucket is under the share, NOTFOUND otherwise so the next table in
 * transport_maps (Postfix's own transports) applies. Everything else is NOTFOUND.
 */
import { addressDomain, normalizeAddress, rampBucket, routesToEngine } from './hash.js';
import type { SocketmapReply } from './socketmap.js';
import type { SplitCounter } from './split.js';
import type { RampShare } from './state.js';

/** The socketmap name in `socketmap:inet:HOST:PORT:transport`. */
export const RAMP_MAP_NAME = 'transport';

export class RampRouter {
  private shares = new Map<string, RampShare>();

  constructor(
    private engineTransport: string,
    private readonly counter: SplitCounter,
  ) {}

  /** Replace the shares; returns the domains whose share changed (for the log). */
  setShares(list: RampShare[]): RampShare[] {
    const next = new Map(list.map((s) => [s.domain, s]));
    const changed = list.filter((s) => this.shares.get(s.domain)?.changedAt !== s.changedAt);
    for (const [domain, old] of this.shares) {
      if (!next.has(domain)) changed.push({ ...old, percent: 0 });
    }
    this.shares = next;
    return changed;
  }

  setEngineTransport(transport: string): void {
    this.engineTransport = transport;
  }

  answer(name: string, key: string): SocketmapReply {
    if (name !== RAMP_MAP_NAME) return { status: 'PERM', reason: `unknown map name '${name}'` };
    const domain = addressDomain(key);
    if (domain === null) return { status: 'NOTFOUND' };
    const share = this.shares.get(domain);
    if (!share) return { status: 'NOTFOUND' };
    const rcpt = normalizeAddress(key);
    if (routesToEngine(rampBucket(rcpt), share.percent)) {
      this.counter.record(domain, rcpt, share.changedAt, 'engine');
      return { status: 'OK', data: this.engineTransport };
    }
    this.counter.record(domain, rcpt, share.changedAt, 'postfix');
    return { status: 'NOTFOUND' };
  }
}
