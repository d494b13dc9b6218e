/**
 * The blocks of PowerMTA's language that Freight implements: `<source>`, `<virtual-mta>`,
 * `<virtual-mta-pool>`, `<domain>`, `<smtp-pattern-list>` and `<bounce-category-patterns>`. One reader
 * per block kind, keyed by the kind; each reports its problems at file:line and adds what it built.
 */
import { isIP } from 'node:net';
import { BOUNCE_CATEGORIES, type BounceCategory } from '../common/bounce-category.js';
import { validCidr, validHostName } from './addresses.js';
import { type Builder, checkDuplicatePatterns, domainSpecs, valuesOf } from './builder.js';
import type {
  BounceCategoryPattern,
  DomainBlock,
  Origin,
  SmtpPatternList,
  SourceBlock,
  VirtualMta,
  VirtualMtaPool,
} from './model.js';
import { parsePatternLine } from './pattern-line.js';
import { parseRegexLiteral } from './regex.js';
import { indexSpecs, POOL, SOURCE, VMTA } from './schema.js';
import type { BlockNode, DirectiveNode } from './syntax.js';
import { ValueError } from './units.js';
import { didYouMean } from './values.js';

const sourceSpecs = indexSpecs(Object.values(SOURCE));
const vmtaSpecs = indexSpecs(Object.values(VMTA));
const poolSpecs = indexSpecs(Object.values(POOL));

/** What the core blocks of a config add up to. */
export interface CoreBlocks {
  sources: SourceBlock[];
  virtualMtas: Map<string, VirtualMta>;
  pools: Map<string, VirtualMtaPool>;
  domains: DomainBlock[];
  patternLists: Map<string, SmtpPatternList>;
  bounceCategoryPatterns: BounceCategoryPattern[];
}

export function emptyCoreBlocks(): CoreBlocks {
  return {
    sources: [],
    virtualMtas: new Map(),
    pools: new Map(),
    domains: [],
    patternLists: new Map(),
    bounceCategoryPatterns: [],
  };
}

const originOf = (node: BlockNode) => ({ file: node.file, line: node.line });

function toDomainBlock(b: Builder, node: BlockNode): DomainBlock | null {
  if (!node.name) {
    b.error(node, '<domain> needs a name: an exact domain, * or *.example.com');
    return null;
  }
  const pattern = node.name.trim().toLowerCase();
  if (/^\{.*\}$/.test(pattern)) {
    b.warn(node, `PowerMTA domain macro <domain ${pattern}> is not supported by Freight yet; block ignored`);
    return null;
  }
  if (!/^(\*|(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])$/.test(pattern)) {
    b.error(node, `invalid domain pattern '${node.name}'`);
    return null;
  }
  const values = b.values(node.children, domainSpecs, `<domain ${pattern}>`);
  const flat = new Map([...values].map(([k, v]) => [k, v[0]!]));
  return { pattern, values: flat, origin: originOf(node) };
}

function readSource(b: Builder, node: BlockNode, into: CoreBlocks): void {
  if (!node.name) {
    b.error(node, '<source> needs an address or CIDR, e.g. <source 127.0.0.1/32>');
    return;
  }
  const cidr = node.name.trim();
  if (/^\{.*\}$/.test(cidr)) {
    b.warn(node, `PowerMTA source ${cidr} is not supported by Freight yet; block ignored`);
    return;
  }
  if (!validCidr(cidr)) {
    b.error(node, `invalid <source> address '${cidr}' (expected e.g. 127.0.0.1/32, 10.0.0.0/8, ::1)`);
  }
  const v = b.values(node.children, sourceSpecs, `<source ${cidr}>`);
  into.sources.push({
    cidr,
    alwaysAllowRelaying:
      valuesOf(v, SOURCE.alwaysAllowRelaying)[0]?.value ?? SOURCE.alwaysAllowRelaying.default,
    processXVirtualMta: valuesOf(v, SOURCE.processXVirtualMta)[0]?.value ?? SOURCE.processXVirtualMta.default,
    jobidHeader: valuesOf(v, SOURCE.jobidHeader)[0]?.value ?? null,
    origin: originOf(node),
  });
}

/** `smtp-source-host IP HOSTNAME`: the source address and the EHLO name, checked where it is set. */
function readSourceHost(b: Builder, node: BlockNode, set: { value: string; origin: Origin } | undefined) {
  if (!set) b.error(node, `<virtual-mta ${node.name}> needs smtp-source-host IP HOSTNAME`);
  const [ip, hostName, ...extra] = (set?.value ?? '').split(/\s+/);
  if (set && set.origin !== 'default') {
    if (!ip || isIP(ip) === 0) {
      b.error(set.origin, `smtp-source-host: '${ip ?? ''}' is not an IP address (expected IP HOSTNAME)`);
    } else if (!hostName || extra.length > 0 || !validHostName(hostName)) {
      b.error(set.origin, 'smtp-source-host needs an IP and one host name, e.g. 192.0.2.10 mta1.example.net');
    }
  }
  return { sourceIp: ip ?? '', hostName: hostName ?? '' };
}

function readVirtualMta(b: Builder, node: BlockNode, into: CoreBlocks): void {
  const name = node.name;
  if (!name) {
    b.error(node, '<virtual-mta> needs a name');
    return;
  }
  if (into.virtualMtas.has(name)) b.error(node, `duplicate <virtual-mta ${name}>`);
  const nested: DomainBlock[] = [];
  const v = b.values(node.children, vmtaSpecs, `<virtual-mta ${name}>`, (child) => {
    if (child.type !== 'domain') b.error(child, `<${child.type}> is not allowed inside <virtual-mta>`);
    else {
      const dom = toDomainBlock(b, child);
      if (dom) {
        nested.push(dom);
        checkDuplicatePatterns(b, nested);
      }
    }
  });
  const host = readSourceHost(b, node, valuesOf(v, VMTA.smtpSourceHost)[0]);
  into.virtualMtas.set(name, { name, ...host, domainBlocks: nested, origin: originOf(node) });
}

function readPool(b: Builder, node: BlockNode, into: CoreBlocks): void {
  if (!node.name) {
    b.error(node, '<virtual-mta-pool> needs a name');
    return;
  }
  if (into.pools.has(node.name)) b.error(node, `duplicate <virtual-mta-pool ${node.name}>`);
  const v = b.values(node.children, poolSpecs, `<virtual-mta-pool ${node.name}>`);
  const members = valuesOf(v, POOL.virtualMta).map((x) => x.value);
  if (members.length === 0) b.error(node, `<virtual-mta-pool ${node.name}> has no virtual-mta`);
  into.pools.set(node.name, { name: node.name, members, origin: originOf(node) });
}

function readDomain(b: Builder, node: BlockNode, into: CoreBlocks): void {
  const dom = toDomainBlock(b, node);
  if (!dom) return;
  into.domains.push(dom);
  checkDuplicatePatterns(b, into.domains);
}

/** The directive lines of a rule block; a nested block is reported and skipped. */
function ruleLines(b: Builder, node: BlockNode): DirectiveNode[] {
  const lines: DirectiveNode[] = [];
  for (const child of node.children) {
    if (child.kind === 'block') b.error(child, `<${child.type}> is not allowed inside <${node.type}>`);
    else lines.push(child);
  }
  return lines;
}

/** Runs `read` on a rule line; a ValueError becomes that line's error. */
function readRule(b: Builder, line: DirectiveNode, read: () => void): void {
  try {
    read();
  } catch (err) {
    if (!(err instanceof ValueError)) throw err;
    b.error(line, err.message);
  }
}

function readPatternList(b: Builder, node: BlockNode, into: CoreBlocks): void {
  if (!node.name) {
    b.error(node, '<smtp-pattern-list> needs a name');
    return;
  }
  if (into.patternLists.has(node.name)) b.error(node, `duplicate <smtp-pattern-list ${node.name}>`);
  const list: SmtpPatternList = { name: node.name, patterns: [], origin: originOf(node) };
  for (const line of ruleLines(b, node)) {
    if (line.name === 'host')
      b.warn(line, "PowerMTA 'host' patterns are not supported by Freight yet; ignored");
    else readRule(b, line, () => list.patterns.push(parsePatternLine(line)));
  }
  into.patternLists.set(node.name, list);
}

function categoryOf(text: string): BounceCategory {
  if ((BOUNCE_CATEGORIES as readonly string[]).includes(text)) return text as BounceCategory;
  throw new ValueError(`unknown bounce category '${text}'${didYouMean(text, BOUNCE_CATEGORIES)}`);
}

function readBounceCategoryPatterns(b: Builder, node: BlockNode, into: CoreBlocks): void {
  for (const line of ruleLines(b, node)) {
    readRule(b, line, () => {
      if (line.name !== '') throw new ValueError(`expected '/regex/ category', found '${line.name}'`);
      const { regex, rest } = parseRegexLiteral(line.value);
      const category = categoryOf(rest);
      into.bounceCategoryPatterns.push({ pattern: regex, category, file: line.file, line: line.line });
    });
  }
}

/** The reader of each core block kind. */
export const CORE_BLOCKS: Record<string, (b: Builder, node: BlockNode, into: CoreBlocks) => void> = {
  source: readSource,
  'virtual-mta': readVirtualMta,
  'virtual-mta-pool': readPool,
  domain: readDomain,
  'smtp-pattern-list': readPatternList,
  'bounce-category-patterns': readBounceCategoryPatterns,
};
