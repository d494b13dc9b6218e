/**
 * Gives the syntax tree meaning: reads every block by its kind's reader and every directive by its
 * declaration, checks references between blocks, and assembles a FreightConfig. Collects every error
 * (file:line) instead of stopping at the first, so `freight config check` reports them all at once.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { Builder, checkReferences, knownPowerMta } from './builder.js';
import { CORE_BLOCKS, type CoreBlocks, emptyCoreBlocks } from './core-blocks.js';
import { buildExtension, extensionSpecs } from './extensions.js';
import { globalSettings, globalSpecs } from './globals.js';
import type { DomainKey, ExtensionBlock, FreightConfig, GlobalSettings, Origin } from './model.js';
import { makeDomainResolver } from './resolve.js';
import type { BlockNode, Diagnostic, DirectiveNode, SyntaxTree } from './syntax.js';
import { unquote } from './syntax.js';
import { didYouMean } from './values.js';

export interface BuildResult {
  config: FreightConfig | null;
  errors: Diagnostic[];
  warnings: Diagnostic[];
  /** Where each global directive's value came from, keyed by directive name (for `config show`). */
  globalOrigins: Record<string, Origin>;
}

/** A top-level block: a core kind, a component's kind, or a PowerMTA kind Freight tolerates. */
function readBlock(b: Builder, node: BlockNode, core: CoreBlocks, extensions: ExtensionBlock[]): void {
  const reader = CORE_BLOCKS[node.type];
  const ext = reader ? null : buildExtension(b, node, false);
  if (reader) reader(b, node, core);
  else if (ext) extensions.push(ext);
  else if (knownPowerMta().blocks.has(node.type)) {
    b.warn(node, `PowerMTA block <${node.type}> is not supported by Freight yet; ignored`);
  } else if (!extensionSpecs.has(node.type)) {
    const known = [...Object.keys(CORE_BLOCKS), ...extensionSpecs.keys()];
    b.error(node, `unknown block <${node.type}>${didYouMean(node.type, known)}`);
  }
}

/** `domain-key selector,domain,path`: repeatable, so a list of keys rather than a setting. */
function readDomainKey(b: Builder, node: DirectiveNode, abs: (p: string) => string): DomainKey | null {
  const parts = unquote(node.value)
    .split(',')
    .map((s) => s.trim());
  if (parts.length !== 3 || parts.some((p) => p === '')) {
    b.error(node, 'domain-key needs selector,domain,path');
    return null;
  }
  const keyPath = abs(parts[2]!);
  if (!existsSync(keyPath)) b.error(node, `domain-key: key file ${keyPath} does not exist`);
  const origin = { file: node.file, line: node.line };
  return { selector: parts[0]!, domain: parts[1]!.toLowerCase(), keyPath, origin };
}

interface TopLevel {
  set: Map<string, { value: unknown; origin: Origin }>;
  domainKeys: DomainKey[];
}

/** The top-level directives: each global at most once, parsed by its declaration; domain keys listed. */
function readTopLevel(b: Builder, nodes: DirectiveNode[], abs: (p: string) => string): TopLevel {
  const set = new Map<string, { value: unknown; origin: Origin }>();
  const domainKeys: DomainKey[] = [];
  for (const node of nodes) {
    if (node.name === 'domain-key') {
      const key = readDomainKey(b, node, abs);
      if (key) domainKeys.push(key);
      continue;
    }
    const spec = globalSpecs.get(node.name);
    if (!spec) {
      b.unknown(node, globalSpecs, 'the global scope');
      continue;
    }
    const prev = set.get(node.name);
    if (prev && prev.origin !== 'default') {
      b.error(node, `duplicate ${node.name} (first set at ${prev.origin.file}:${prev.origin.line})`);
      continue;
    }
    const value = b.parse(spec, node);
    if (value !== undefined) set.set(node.name, { value, origin: { file: node.file, line: node.line } });
  }
  return { set, domainKeys };
}

export function buildConfig(tree: SyntaxTree): BuildResult {
  const b = new Builder();
  b.errors.push(...tree.diagnostics);
  const baseDir = resolvePath(tree.files[0] ?? 'freight.conf', '..');
  const abs = (p: string) => (isAbsolute(p) ? p : resolvePath(baseDir, p));

  const core = emptyCoreBlocks();
  const extensions: ExtensionBlock[] = [];
  const topDirectives: DirectiveNode[] = [];
  for (const node of tree.nodes) {
    if (node.kind === 'directive') topDirectives.push(node);
    else readBlock(b, node, core, extensions);
  }
  const { set, domainKeys } = readTopLevel(b, topDirectives, abs);
  checkReferences(b, core);
  const global: GlobalSettings = globalSettings(set, abs, (at, message) => {
    if (at !== 'default') b.error(at, message);
  });
  const globalOrigins: Record<string, Origin> = {};
  for (const name of globalSpecs.keys()) globalOrigins[name] = set.get(name)?.origin ?? 'default';

  if (b.errors.length > 0) return { config: null, errors: b.errors, warnings: b.warnings, globalOrigins };
  const config: FreightConfig = {
    files: tree.files,
    global,
    ...core,
    domainKeys,
    extensions,
    warnings: b.warnings.map((w) => `${w.file}:${w.line}: ${w.message}`),
    domainSettings: makeDomainResolver(core.domains, core.virtualMtas),
  };
  return { config, errors: [], warnings: b.warnings, globalOrigins };
}
