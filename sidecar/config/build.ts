/**
 * Gives the syntax tree meaning: checks every directive against the registry, converts values, checks
 * references between blocks, and assembles a FreightConfig. Collects every error (file:line) instead of
 * stopping at the first, so `freight config check` reports them all at once.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { BOUNCE_CATEGORIES, type BounceCategory } from '../acct/record.js';
import {
  Builder,
  checkDuplicatePatterns,
  checkReferences,
  domainSpecs,
  globalSpecs,
  knownPowerMta,
  single,
  validCidr,
  validHostName,
} from './builder.js';
import { EXTENSION_BLOCKS } from './extensions.js';
import type {
  BounceCategoryPattern,
  DomainBlock,
  DomainKey,
  ExtensionBlock,
  FreightConfig,
  GlobalSettings,
  HostPort,
  Origin,
  SmtpPatternList,
  SourceBlock,
  VirtualMta,
  VirtualMtaPool,
} from './model.js';
import { parsePatternLine } from './pattern-line.js';
import { parseRegexLiteral } from './regex.js';
import { makeDomainResolver } from './resolve.js';
import {
  GLOBAL_DIRECTIVES,
  indexSpecs,
  POOL_DIRECTIVES,
  SOURCE_DIRECTIVES,
  VMTA_DIRECTIVES,
} from './schema.js';
import type { BlockNode, Diagnostic, DirectiveNode, SyntaxTree } from './syntax.js';
import { unquote } from './syntax.js';
import { ValueError } from './units.js';
import { didYouMean } from './values.js';

const sourceSpecs = indexSpecs(SOURCE_DIRECTIVES);
const vmtaSpecs = indexSpecs(VMTA_DIRECTIVES);
const poolSpecs = indexSpecs(POOL_DIRECTIVES);
const CORE_BLOCKS = [
  'source',
  'virtual-mta',
  'virtual-mta-pool',
  'domain',
  'smtp-pattern-list',
  'bounce-category-patterns',
];

export interface BuildResult {
  config: FreightConfig | null;
  errors: Diagnostic[];
  warnings: Diagnostic[];
  /** Where each global directive's value came from, keyed by directive name (for `config show`). */
  globalOrigins: Record<string, Origin>;
}

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
  return { pattern, values: flat, origin: { file: node.file, line: node.line } };
}

function categoryOf(text: string): BounceCategory | null {
  return (BOUNCE_CATEGORIES as readonly string[]).includes(text) ? (text as BounceCategory) : null;
}

function readApiKey(
  value: string | undefined,
  b: Builder,
  at: Origin,
  abs: (p: string) => string,
): string | null {
  if (value === undefined) return null;
  if (!value.startsWith('file:')) return value;
  const path = abs(value.slice(5));
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    if (at !== 'default')
      b.error(at, `http-api-key: cannot read ${path}: ${(err as NodeJS.ErrnoException).code}`);
    return null;
  }
}

/** `http-read-allow`: every entry must be a CIDR or a bare address. */
function readAllowList(list: string[], b: Builder, at: Origin | undefined): string[] {
  for (const cidr of list) {
    if (!validCidr(cidr) && at && at !== 'default') {
      b.error(at, `http-read-allow: invalid CIDR '${cidr}' (expected e.g. 10.0.0.0/8 or 127.0.0.1)`);
    }
  }
  return list;
}

export function buildConfig(tree: SyntaxTree): BuildResult {
  const b = new Builder();
  b.errors.push(...tree.diagnostics);
  const mainFile = tree.files[0] ?? 'freight.conf';
  const baseDir = resolvePath(mainFile, '..');
  const abs = (p: string) => (isAbsolute(p) ? p : resolvePath(baseDir, p));

  const sources: SourceBlock[] = [];
  const virtualMtas = new Map<string, VirtualMta>();
  const pools = new Map<string, VirtualMtaPool>();
  const domains: DomainBlock[] = [];
  const patternLists = new Map<string, SmtpPatternList>();
  const bounceCategoryPatterns: BounceCategoryPattern[] = [];
  const domainKeys: DomainKey[] = [];
  const extensions: ExtensionBlock[] = [];
  const extSpecs = new Map(EXTENSION_BLOCKS.map((s) => [s.kind, s]));
  const topDirectives: DirectiveNode[] = [];

  const buildExtension = (node: BlockNode, nested: boolean): ExtensionBlock | null => {
    const spec = extSpecs.get(node.type);
    if (!spec) return null;
    if (spec.nestedOnly && !nested) {
      b.error(node, `<${node.type}> is only allowed inside another block`);
      return null;
    }
    if (spec.named === 'required' && !node.name) b.error(node, `<${node.type}> needs a name`);
    if (spec.named === 'none' && node.name) b.error(node, `<${node.type}> takes no name`);
    const children: ExtensionBlock[] = [];
    const values = b.values(node.children, indexSpecs(spec.directives), `<${node.type}>`, (child) => {
      if (!spec.children?.includes(child.type)) {
        b.error(child, `<${child.type}> is not allowed inside <${node.type}>`);
        return;
      }
      const built = buildExtension(child, true);
      if (built) children.push(built);
    });
    return {
      kind: node.type,
      name: node.name,
      values,
      children,
      origin: { file: node.file, line: node.line },
    };
  };

  for (const node of tree.nodes) {
    if (node.kind === 'directive') {
      topDirectives.push(node);
      continue;
    }
    const at = { file: node.file, line: node.line };
    switch (node.type) {
      case 'source': {
        if (!node.name) {
          b.error(node, '<source> needs an address or CIDR, e.g. <source 127.0.0.1/32>');
          break;
        }
        const cidr = node.name.trim();
        if (/^\{.*\}$/.test(cidr)) {
          b.warn(node, `PowerMTA source ${cidr} is not supported by Freight yet; block ignored`);
          break;
        }
        if (!validCidr(cidr)) {
          b.error(node, `invalid <source> address '${cidr}' (expected e.g. 127.0.0.1/32, 10.0.0.0/8, ::1)`);
        }
        const v = b.values(node.children, sourceSpecs, `<source ${cidr}>`);
        sources.push({
          cidr,
          alwaysAllowRelaying: single<boolean>(v, 'always-allow-relaying') ?? false,
          processXVirtualMta: single<boolean>(v, 'process-x-virtual-mta') ?? false,
          jobidHeader: single<string>(v, 'jobid-header') ?? null,
          origin: at,
        });
        break;
      }
      case 'virtual-mta': {
        if (!node.name) {
          b.error(node, '<virtual-mta> needs a name');
          break;
        }
        if (virtualMtas.has(node.name)) b.error(node, `duplicate <virtual-mta ${node.name}>`);
        const nested: DomainBlock[] = [];
        const v = b.values(node.children, vmtaSpecs, `<virtual-mta ${node.name}>`, (child) => {
          if (child.type !== 'domain') b.error(child, `<${child.type}> is not allowed inside <virtual-mta>`);
          else {
            const dom = toDomainBlock(b, child);
            if (dom) {
              nested.push(dom);
              checkDuplicatePatterns(b, nested);
            }
          }
        });
        const host = v.get('smtp-source-host')?.[0];
        if (!host) b.error(node, `<virtual-mta ${node.name}> needs smtp-source-host IP HOSTNAME`);
        const [ip, hostName, ...extra] = String(host?.value ?? '').split(/\s+/);
        if (host && host.origin !== 'default') {
          if (!ip || isIP(ip) === 0) {
            b.error(
              host.origin,
              `smtp-source-host: '${ip ?? ''}' is not an IP address (expected IP HOSTNAME)`,
            );
          } else if (!hostName || extra.length > 0 || !validHostName(hostName)) {
            b.error(
              host.origin,
              'smtp-source-host needs an IP and one host name, e.g. 192.0.2.10 mta1.example.net',
            );
          }
        }
        virtualMtas.set(node.name, {
          name: node.name,
          sourceIp: ip ?? '',
          hostName: hostName ?? '',
          domainBlocks: nested,
          origin: at,
        });
        break;
      }
      case 'virtual-mta-pool': {
        if (!node.name) {
          b.error(node, '<virtual-mta-pool> needs a name');
          break;
        }
        if (pools.has(node.name)) b.error(node, `duplicate <virtual-mta-pool ${node.name}>`);
        const v = b.values(node.children, poolSpecs, `<virtual-mta-pool ${node.name}>`);
        const members = (v.get('virtual-mta') ?? []).map((x) => x.value as string);
        if (members.length === 0) b.error(node, `<virtual-mta-pool ${node.name}> has no virtual-mta`);
        pools.set(node.name, { name: node.name, members, origin: at });
        break;
      }
      case 'domain': {
        const dom = toDomainBlock(b, node);
        if (!dom) break;
        domains.push(dom);
        checkDuplicatePatterns(b, domains);
        break;
      }
      case 'smtp-pattern-list': {
        if (!node.name) {
          b.error(node, '<smtp-pattern-list> needs a name');
          break;
        }
        if (patternLists.has(node.name)) b.error(node, `duplicate <smtp-pattern-list ${node.name}>`);
        const list: SmtpPatternList = { name: node.name, patterns: [], origin: at };
        for (const child of node.children) {
          if (child.kind === 'block') {
            b.error(child, `<${child.type}> is not allowed inside <smtp-pattern-list>`);
            continue;
          }
          if (child.name === 'host') {
            b.warn(child, "PowerMTA 'host' patterns are not supported by Freight yet; ignored");
            continue;
          }
          try {
            list.patterns.push(parsePatternLine(child));
          } catch (err) {
            if (!(err instanceof ValueError)) throw err;
            b.error(child, err.message);
          }
        }
        patternLists.set(node.name, list);
        break;
      }
      case 'bounce-category-patterns': {
        for (const child of node.children) {
          if (child.kind === 'block') {
            b.error(child, `<${child.type}> is not allowed inside <bounce-category-patterns>`);
            continue;
          }
          try {
            if (child.name !== '') throw new ValueError(`expected '/regex/ category', found '${child.name}'`);
            const { regex, rest } = parseRegexLiteral(child.value);
            const category = categoryOf(rest);
            if (!category)
              throw new ValueError(`unknown bounce category '${rest}'${didYouMean(rest, BOUNCE_CATEGORIES)}`);
            bounceCategoryPatterns.push({ pattern: regex, category, file: child.file, line: child.line });
          } catch (err) {
            if (!(err instanceof ValueError)) throw err;
            b.error(child, err.message);
          }
        }
        break;
      }
      default: {
        const ext = buildExtension(node, false);
        if (ext) extensions.push(ext);
        else if (knownPowerMta().blocks.has(node.type)) {
          b.warn(node, `PowerMTA block <${node.type}> is not supported by Freight yet; ignored`);
        } else if (!extSpecs.has(node.type)) {
          b.error(
            node,
            `unknown block <${node.type}>${didYouMean(node.type, [...CORE_BLOCKS, ...extSpecs.keys()])}`,
          );
        }
      }
    }
  }

  const globals = new Map<string, { value: unknown; origin: Origin }>();
  for (const node of topDirectives) {
    if (node.name === 'domain-key') {
      const parts = unquote(node.value)
        .split(',')
        .map((s) => s.trim());
      if (parts.length !== 3 || parts.some((p) => p === '')) {
        b.error(node, 'domain-key needs selector,domain,path');
        continue;
      }
      const keyPath = abs(parts[2]!);
      if (!existsSync(keyPath)) b.error(node, `domain-key: key file ${keyPath} does not exist`);
      domainKeys.push({
        selector: parts[0]!,
        domain: parts[1]!.toLowerCase(),
        keyPath,
        origin: { file: node.file, line: node.line },
      });
      continue;
    }
    const spec = globalSpecs.get(node.name);
    if (!spec) {
      b.unknown(node, globalSpecs, 'the global scope');
      continue;
    }
    const prev = globals.get(node.name);
    if (prev && prev.origin !== 'default') {
      b.error(node, `duplicate ${node.name} (first set at ${prev.origin.file}:${prev.origin.line})`);
      continue;
    }
    const value = b.parse(spec, node);
    if (value !== undefined) globals.set(node.name, { value, origin: { file: node.file, line: node.line } });
  }

  checkReferences(b, { domains, virtualMtas, pools, patternLists });

  const g = <T>(name: string): T => {
    const set = globals.get(name);
    if (set) return set.value as T;
    return globalSpecs.get(name)!.default as T;
  };
  const protocol = g<string>('smtp-listener-protocol');
  const apiKeyOrigin = globals.get('http-api-key')?.origin ?? 'default';
  const global: GlobalSettings = {
    hostName: g<string | undefined>('host-name') ?? hostname(),
    spoolDir: abs(g('spool-dir')),
    acctDb: abs(g('acct-db')),
    runDir: abs(g('run-dir')),
    smtpListener: g<HostPort>('smtp-listener'),
    smtpListenerProtocol: protocol === 'smtp' ? 'smtp' : 'lmtp',
    policyListener: g<HostPort>('policy-listener'),
    policySocket: g<string | undefined>('policy-socket') ? abs(g('policy-socket')) : null,
    rampListener: g<HostPort>('ramp-listener'),
    rampEnabled: g<boolean>('ramp-enabled'),
    rampEngineTransport: g<string | null>('ramp-engine-transport') ?? null,
    httpMgmtListener: g<HostPort>('http-mgmt-listener'),
    httpApiKey: readApiKey(g<string | undefined>('http-api-key'), b, apiKeyOrigin, abs),
    httpReadAllow: readAllowList(g<string[]>('http-read-allow'), b, globals.get('http-read-allow')?.origin),
    maillog: abs(g('maillog')),
    maillogTimezone: g<string | undefined>('maillog-timezone') ?? null,
    dnsServer: g<HostPort | undefined>('dns-server') ?? null,
    remoteSmtpPort: g<number>('remote-smtp-port'),
    postmaster: g<string>('postmaster'),
    acctRetention: g<number>('acct-retention'),
    postfixDir: abs(g('postfix-dir')),
    postfixListener: g<HostPort>('postfix-listener'),
    postfixCommandDir: g<string>('postfix-command-dir'),
  };

  // Directives that components register in GLOBAL_DIRECTIVES beyond the fixed GlobalSettings fields are
  // still carried, under their camelCase name, so a component can read its own without a model change.
  const globalOrigins: Record<string, Origin> = {};
  const extra = global as unknown as Record<string, unknown>;
  for (const spec of GLOBAL_DIRECTIVES) {
    globalOrigins[spec.name] = globals.get(spec.name)?.origin ?? 'default';
    const field = spec.name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    if (!(field in extra)) extra[field] = g(spec.name) ?? null;
  }
  const warnings = b.warnings.map((w) => `${w.file}:${w.line}: ${w.message}`);
  if (b.errors.length > 0) return { config: null, errors: b.errors, warnings: b.warnings, globalOrigins };
  const config: FreightConfig = {
    files: tree.files,
    global,
    sources,
    virtualMtas,
    pools,
    domains,
    patternLists,
    bounceCategoryPatterns,
    domainKeys,
    extensions,
    warnings,
    domainSettings: makeDomainResolver(domains, virtualMtas),
  };
  return { config, errors: [], warnings: b.warnings, globalOrigins };
}
