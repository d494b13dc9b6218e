/**
 * Block kinds that components add to the language (e.g. `<policy-limit NAME>`). Each component owns its
 * spec; this list only makes the builder aware of it. Values are parsed by the same value kinds as the core.
 */
import { DELIVERABILITY_BLOCKS } from '../deliverability/config.js';
import { POLICY_BLOCKS } from '../policy/limits-config.js';
import type { DirectiveSpec } from './schema.js';

export interface BlockSpec {
  kind: string;
  named: 'required' | 'optional' | 'none';
  directives: DirectiveSpec[];
  /** Block kinds allowed nested inside (they must be registered too). */
  children?: string[];
  /** Only valid nested inside another block, never at top level. */
  nestedOnly?: boolean;
  description: string;
}

export const EXTENSION_BLOCKS: BlockSpec[] = [...POLICY_BLOCKS, ...DELIVERABILITY_BLOCKS];
