/**
 * Per-domain Postfix transports rendered from the <domain> blocks (the config helper completes this:
 * Postfix-delivered domains get a paced smtp clone, engine-routed domains go to the `freight` transport).
 */
import type { FreightConfig } from '../config/model.js';

export interface DomainTransports {
  /** Extra master.cf service lines. */
  masterCf: string;
  /** Extra main.cf parameter lines. */
  mainCf: string;
  /** Lines for the static transport table. */
  transportLines: string[];
}

export function renderDomainTransports(_config: FreightConfig): DomainTransports {
  return { masterCf: '', mainCf: '', transportLines: [] };
}
