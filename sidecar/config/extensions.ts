/**
 * Block kinds that components add to the language (`<policy-limit NAME>`, `<warmup-plan NAME>`, …). They
 * are declared in config, so that config knows the whole language without importing the components; a
 * component reads its blocks back through the typed accessors below, by the same declarations.
 */
import { type Builder, valuesOf } from './builder.js';
import { DELIVERABILITY_BLOCKS } from './deliverability-blocks.js';
import type { ExtensionBlock } from './model.js';
import { POLICY_BLOCKS } from './policy-blocks.js';
import { type BlockSpec, type DirectiveSpec, indexSpecs } from './schema.js';
import type { BlockNode } from './syntax.js';
import type { Origin } from './value-types.js';

export const EXTENSION_BLOCKS: BlockSpec[] = [...POLICY_BLOCKS, ...DELIVERABILITY_BLOCKS];
export const extensionSpecs = new Map(EXTENSION_BLOCKS.map((s) => [s.kind, s]));
const directiveSpecs = new Map(EXTENSION_BLOCKS.map((s) => [s.kind, indexSpecs(s.directives)]));

/** An extension block's directives, parsed by their declarations; null if `node` is no extension block. */
export function buildExtension(b: Builder, node: BlockNode, nested: boolean): ExtensionBlock | null {
  const spec = extensionSpecs.get(node.type);
  if (!spec) return null;
  if (spec.nestedOnly && !nested) {
    b.error(node, `<${node.type}> is only allowed inside another block`);
    return null;
  }
  if (spec.named === 'required' && !node.name) b.error(node, `<${node.type}> needs a name`);
  if (spec.named === 'none' && node.name) b.error(node, `<${node.type}> takes no name`);
  const children: ExtensionBlock[] = [];
  const values = b.values(node.children, directiveSpecs.get(spec.kind)!, `<${node.type}>`, (child) => {
    if (!spec.children?.includes(child.type)) {
      b.error(child, `<${child.type}> is not allowed inside <${node.type}>`);
      return;
    }
    const built = buildExtension(b, child, true);
    if (built) children.push(built);
  });
  return { kind: node.type, name: node.name, values, children, origin: { file: node.file, line: node.line } };
}

export interface Setting<T> {
  value: T;
  origin: Origin;
}

/** Every value of a repeatable directive and where it was set, in file order. */
export function blockSettings<T>(block: ExtensionBlock, spec: DirectiveSpec<T>): Setting<T>[] {
  return valuesOf(block.values, spec);
}

/** The directive's value and where it was set; undefined when the block does not set it. */
export function blockSetting<T>(block: ExtensionBlock, spec: DirectiveSpec<T>): Setting<T> | undefined {
  return blockSettings(block, spec)[0];
}

/** Every value of a repeatable directive, in file order. */
export function blockValues<T>(block: ExtensionBlock, spec: DirectiveSpec<T>): T[] {
  return blockSettings(block, spec).map((s) => s.value);
}

/** The value the block sets, else the declared default (null when there is none). */
export function blockValue<T>(block: ExtensionBlock, spec: DirectiveSpec<T> & { default: T }): T;
export function blockValue<T>(block: ExtensionBlock, spec: DirectiveSpec<T>): T | null;
export function blockValue<T>(block: ExtensionBlock, spec: DirectiveSpec<T>): T | null {
  const set = blockSetting(block, spec);
  return set ? set.value : (spec.default ?? null);
}
