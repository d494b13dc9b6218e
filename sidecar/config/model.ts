/**
 * The typed shape of a loaded freight.conf. The parser produces it; every daemon reads it.
 * Values are already converted: durations and windows in milliseconds, sizes in bytes.
 */
import type { BounceCategory } from '../common/bounce-category.js';
import type { GlobalSettings } from './globals.js';
import type { DomainSettings } from './schema.js';
import type { Origin } from './value-types.js';

export type { GlobalSettings } from './globals.js';
export type { DomainSettings } from './schema.js';
export type { HostPort, Origin, Rate } from './value-types.js';

export interface SourceBlock {
  cidr: string;
  alwaysAllowRelaying: boolean;
  processXVirtualMta: boolean;
  /** Header that carries the job id (PowerMTA's `jobid-header`), removed before delivery; null = none. */
  jobidHeader: string | null;
  origin: Origin;
}

export interface VirtualMta {
  name: string;
  /** Source IP bound for outbound connections. */
  sourceIp: string;
  /** EHLO name for outbound connections. */
  hostName: string;
  /** Nested `<domain>` overrides inside `<virtual-mta>`. */
  domainBlocks: DomainBlock[];
  origin: Origin;
}

export interface VirtualMtaPool {
  name: string;
  members: string[];
  origin: Origin;
}

/** A `<domain NAME>` block as written: NAME is exact, `*`, or a wildcard like `*.example.com`. */
export interface DomainBlock {
  pattern: string;
  /** Directive values as parsed (typed), keyed by directive name, with their origin. */
  values: Map<string, { value: unknown; origin: Origin }>;
  origin: Origin;
}

export type PatternAction =
  | { kind: 'mode'; mode: 'backoff' | 'normal' }
  | { kind: 'disable-source-ip'; reenableAfter: number | null }
  | { kind: 'bounce-rcpt' }
  | { kind: 'bounce-queue' }
  | { kind: 'skip-mx' }
  | { kind: 'defer-queue' }
  /** Ratio trigger (Freight's own): fire the other actions only when the ratio over the window is reached. */
  | { kind: 'threshold'; ratio: number; windowMs: number; minSamples: number };

export interface SmtpPattern {
  /** `reply` (match against the SMTP reply) — PowerMTA also has `host` patterns; not supported yet. */
  on: 'reply';
  pattern: RegExp;
  actions: PatternAction[];
  origin: Origin;
}

export interface SmtpPatternList {
  name: string;
  patterns: SmtpPattern[];
  origin: Origin;
}

export interface BounceCategoryPattern {
  pattern: RegExp;
  category: BounceCategory;
  file: string;
  line: number;
}

export interface DomainKey {
  selector: string;
  domain: string;
  keyPath: string;
  origin: Origin;
}

/** A block kind registered by a component (e.g. `<policy-limit NAME>`), kept generic here. */
export interface ExtensionBlock {
  kind: string;
  name: string | null;
  values: Map<string, { value: unknown; origin: Origin }[]>;
  /** Nested blocks (e.g. per-key overrides). */
  children: ExtensionBlock[];
  origin: Origin;
}

export interface FreightConfig {
  /** The main file and every included file, absolute. */
  files: string[];
  global: GlobalSettings;
  sources: SourceBlock[];
  virtualMtas: Map<string, VirtualMta>;
  pools: Map<string, VirtualMtaPool>;
  domains: DomainBlock[];
  patternLists: Map<string, SmtpPatternList>;
  bounceCategoryPatterns: BounceCategoryPattern[];
  domainKeys: DomainKey[];
  extensions: ExtensionBlock[];
  /** Non-fatal diagnostics (e.g. a PowerMTA directive Freight ignores), as `file:line: message`. */
  warnings: string[];
  domainSettings(domain: string, vmta?: string): DomainSettings;
}
