/**
 * The config builder's working parts: a collector of file:line diagnostics that reads a block's directives
 * against the registry, the PowerMTA names Freight tolerates, address checks, and the checks that span
 * blocks (references to pools, virtual MTAs and pattern lists; duplicate domain blocks).
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { packageRoot } from '../common/paths.js';
import type { DomainBlock, Origin, SmtpPatternList, VirtualMta, VirtualMtaPool } from './model.js';
import { type DirectiveSpec, DOMAIN_DIRECTIVES, indexSpecs } from './schema.js';
import type { BlockNode, ConfigNode, Diagnostic, DirectiveNode } from './syntax.js';
import { ValueError } from './units.js';
import { didYouMean, parseValue } from './values.js';

/** Shared with build.ts: `Builder.unknown` tells the domain scope apart by this instance. */
export const domainSpecs = indexSpecs(DOMAIN_DIRECTIVES);

interface PowerMtaNames {
  directives: Set<string>;
  blocks: Set<string>;
}
let pmtaNames: PowerMtaNames | null = null;
/**
 * PowerMTA directives and block kinds (`<acct-file>`) Freight does not implement: a warning, not an error,
 * so an existing PowerMTA config loads.
 */
export function knownPowerMta(): PowerMtaNames {
  if (!pmtaNames) {
    const file = resolvePath(packageRoot, 'data/pmta-directives.txt');
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const names = text
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim().toLowerCase())
      .filter(Boolean);
    pmtaNames = {
      directives: new Set(names.filter((n) => !n.startsWith('<'))),
      blocks: new Set(names.filter((n) => n.startsWith('<')).map((n) => n.replace(/[<>]/g, ''))),
    };
  }
  return pmtaNames;
}

export class Builder {
  readonly errors: Diagnostic[] = [];
  readonly warnings: Diagnostic[] = [];

  error(at: { file: string; line: number }, message: string): void {
    this.errors.push({ file: at.file, line: at.line, message });
  }

  warn(at: { file: string; line: number }, message: string): void {
    this.warnings.push({ file: at.file, line: at.line, message });
  }

  /** Parse directives of one block into a values map; unknown ones are reported. */
  values(
    nodes: ConfigNode[],
    specs: Map<string, DirectiveSpec>,
    where: string,
    onBlock?: (b: BlockNode) => void,
  ): ParsedValues {
    const out: ParsedValues = new Map();
    for (const node of nodes) {
      if (node.kind === 'block') {
        if (onBlock) onBlock(node);
        else this.error(node, `<${node.type}> is not allowed inside ${where}`);
        continue;
      }
      const spec = specs.get(node.name);
      if (!spec) {
        this.unknown(node, specs, where);
        continue;
      }
      const value = this.parse(spec, node);
      if (value === undefined) continue;
      const list = out.get(node.name) ?? [];
      if (list.length > 0 && !spec.repeatable) {
        const first = list[0]!.origin as { line: number };
        this.error(node, `duplicate ${node.name} in ${where} (first set at line ${first.line})`);
        continue;
      }
      list.push({ value, origin: { file: node.file, line: node.line } });
      out.set(node.name, list);
    }
    return out;
  }

  parse(spec: DirectiveSpec, node: DirectiveNode): unknown {
    try {
      return parseValue(spec, node.value);
    } catch (err) {
      if (err instanceof ValueError) {
        this.error(node, `${node.name}: ${err.message}`);
        return undefined;
      }
      throw err;
    }
  }

  unknown(node: DirectiveNode, specs: Map<string, DirectiveSpec>, where: string): void {
    if (domainSpecs.has(node.name) && specs !== domainSpecs) {
      this.error(node, `${node.name} belongs inside a <domain> block, not ${where}`);
    } else if (node.name === 'domain-key') {
      // The global scope reads domain-key itself; reaching here means a block holds it.
      this.error(node, `domain-key is only supported at the top level, not in ${where}`);
    } else if (knownPowerMta().directives.has(node.name)) {
      this.warn(node, `PowerMTA directive '${node.name}' is not supported by Freight yet; ignored`);
    } else {
      this.error(node, `unknown directive '${node.name}' in ${where}${didYouMean(node.name, specs.keys())}`);
    }
  }
}

/** A block's directive values as Builder.values parsed them, keyed by directive name. */
export type ParsedValues = Map<string, { value: unknown; origin: Origin }[]>;

/**
 * One directive's values read back through the declaration that parsed them (so typed as it parses),
 * in file order; empty when the block does not set it.
 */
export function valuesOf<T>(values: ParsedValues, spec: DirectiveSpec<T>): { value: T; origin: Origin }[] {
  return (values.get(spec.name) ?? []) as { value: T; origin: Origin }[];
}

/** Two `<domain>` blocks with the same pattern in one scope: report the later one (the newest is last). */
export function checkDuplicatePatterns(b: Builder, blocks: DomainBlock[]): void {
  const last = blocks[blocks.length - 1];
  if (!last || last.origin === 'default') return;
  for (const other of blocks) {
    if (other === last) break;
    if (other.pattern === last.pattern && other.origin !== 'default') {
      b.error(
        last.origin,
        `duplicate <domain ${last.pattern}> (first at ${other.origin.file}:${other.origin.line})`,
      );
      return;
    }
  }
}

export function checkReferences(
  b: Builder,
  cfg: {
    domains: DomainBlock[];
    virtualMtas: Map<string, VirtualMta>;
    pools: Map<string, VirtualMtaPool>;
    patternLists: Map<string, SmtpPatternList>;
  },
): void {
  for (const pool of cfg.pools.values()) {
    for (const member of pool.members) {
      if (!cfg.virtualMtas.has(member) && pool.origin !== 'default') {
        b.error(pool.origin, `<virtual-mta-pool ${pool.name}>: undefined virtual-mta '${member}'`);
      }
    }
  }
  const blocks = [...cfg.domains, ...[...cfg.virtualMtas.values()].flatMap((v) => v.domainBlocks)];
  for (const dom of blocks) {
    for (const [name, { value, origin }] of dom.values) {
      if (origin === 'default') continue;
      const spec = domainSpecs.get(name);
      const ref = String(value);
      if (spec?.ref === 'virtual-mta-pool' && !cfg.pools.has(ref)) {
        b.error(origin, `${name}: undefined virtual-mta-pool '${ref}'${didYouMean(ref, cfg.pools.keys())}`);
      } else if (spec?.ref === 'virtual-mta' && !cfg.virtualMtas.has(ref)) {
        b.error(origin, `${name}: undefined virtual-mta '${ref}'${didYouMean(ref, cfg.virtualMtas.keys())}`);
      } else if (spec?.ref === 'smtp-pattern-list' && !cfg.patternLists.has(ref)) {
        b.error(
          origin,
          `${name}: undefined smtp-pattern-list '${ref}'${didYouMean(ref, cfg.patternLists.keys())}`,
        );
      }
    }
  }
}
