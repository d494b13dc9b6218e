/**
 * freight.conf syntax: lines of `directive value`, `<block [name]> … </block>`, `#` comments and
 * `include FILE|GLOB`. Produces a tree of nodes that remember file:line; the builder gives them meaning.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';

export interface Diagnostic {
  file: string;
  line: number;
  message: string;
}

export interface DirectiveNode {
  kind: 'directive';
  name: string;
  /** Raw value text (comment stripped, trimmed); '' when the directive has no value. */
  value: string;
  file: string;
  line: number;
}

export interface BlockNode {
  kind: 'block';
  type: string;
  /** Text after the block type inside `<…>`, or null (e.g. `<domain *>` → '*'). */
  name: string | null;
  children: ConfigNode[];
  file: string;
  line: number;
}

export type ConfigNode = DirectiveNode | BlockNode;

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}: ${d.message}`;
}

/**
 * Remove a trailing `# comment` that is outside quotes and outside a /regex/. A `/` that opens no regex
 * (a path like `/acct.db`) must not hide the comment, so an unterminated regex falls back to a plain scan.
 */
export function stripComment(line: string): string {
  return scanComment(line, true) ?? scanComment(line, false) ?? line;
}

/** The line without its comment; null if regex-aware scanning ended inside an unterminated /regex/. */
function scanComment(line: string, regexAware: boolean): string | null {
  let quote: string | null = null;
  let inRegex = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\') {
      i++;
      continue;
    }
    if (quote) {
      if (c === quote) quote = null;
    } else if (inRegex) {
      if (c === '/') inRegex = false;
    } else if ((c === '"' || c === "'") && (i === 0 || /[\s,=]/.test(line[i - 1]!))) {
      quote = c;
    } else if (regexAware && c === '/' && (i === 0 || /[\s,=]/.test(line[i - 1]!))) {
      inRegex = true;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i);
    }
  }
  return inRegex ? null : line;
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

/** Expand `include` targets: a file, or a glob in the last path component. Sorted for determinism. */
function expandInclude(target: string, fromFile: string): string[] {
  const full = isAbsolute(target) ? target : resolve(dirname(fromFile), target);
  const base = basename(full);
  if (!/[*?]/.test(base)) return [full];
  const dir = dirname(full);
  const re = globToRegExp(base);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => re.test(n))
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => {
      try {
        return statSync(p).isFile();
      } catch {
        return false; // a dangling symlink matched by the glob is not a config file
      }
    });
}

interface ParseState {
  diagnostics: Diagnostic[];
  files: string[];
  stack: string[];
}

type At = { file: string; line: number };

/** `</type>`: closes the innermost open block, which must be of that type. */
function closeBlock(line: string, here: At, open: BlockNode[], state: ParseState): void {
  const m = /^<\/\s*([\w-]+)\s*>$/.exec(line);
  if (!m) {
    state.diagnostics.push({ ...here, message: `malformed closing tag '${line}'` });
    return;
  }
  const type = m[1]!.toLowerCase();
  const top = open[open.length - 1]!;
  if (open.length === 1 || top.type !== type) {
    const expected = open.length > 1 ? `</${top.type}> (opened at line ${top.line})` : 'no closing tag';
    state.diagnostics.push({ ...here, message: `unexpected </${type}>, expected ${expected}` });
    return;
  }
  open.pop();
}

/** `<type [name]>`: a new block inside the innermost open one. */
function openBlock(line: string, here: At, open: BlockNode[], state: ParseState): void {
  const m = /^<\s*([\w-]+)(?:\s+([^>]*?))?\s*>$/.exec(line);
  if (!m) {
    state.diagnostics.push({ ...here, message: `malformed block tag '${line}'` });
    return;
  }
  const type = m[1]!.toLowerCase();
  const block: BlockNode = { kind: 'block', type, name: m[2] ? m[2] : null, children: [], ...here };
  open[open.length - 1]!.children.push(block);
  open.push(block);
}

/** `include FILE|GLOB`: the included files' nodes, in place. */
function include(value: string, here: At, state: ParseState): ConfigNode[] {
  if (value === '') {
    state.diagnostics.push({ ...here, message: 'include needs a file name or glob' });
    return [];
  }
  const targets = expandInclude(unquote(value), here.file);
  if (!/[*?]/.test(value) && !existsSync(targets[0]!)) {
    state.diagnostics.push({ ...here, message: `include: no such file ${targets[0]}` });
    return [];
  }
  return targets.flatMap((target) => parseFile(target, state, here));
}

/** A line that is no tag: a directive, an include, or a bare `/regex/ …` rule. */
function directiveLine(line: string, here: At, state: ParseState): ConfigNode[] {
  // A bare `/regex/ …` rule line (bounce-category-patterns) has no directive name.
  if (line.startsWith('/')) return [{ kind: 'directive', name: '', value: line, ...here }];
  const m = /^([A-Za-z][\w.-]*)(?:\s+(.*))?$/.exec(line);
  if (!m) {
    state.diagnostics.push({ ...here, message: `cannot parse '${line}'` });
    return [];
  }
  const name = m[1]!.toLowerCase();
  const value = (m[2] ?? '').trim();
  if (name === 'include') return include(value, here, state);
  return [{ kind: 'directive', name, value, ...here }];
}

/** The nodes of one file's text; unclosed blocks are reported at the line that opened them. */
function parseText(text: string, file: string, state: ParseState): ConfigNode[] {
  const root: BlockNode = { kind: 'block', type: '', name: null, children: [], file, line: 0 };
  const open: BlockNode[] = [root];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = stripComment(lines[i]!).trim();
    const here = { file, line: i + 1 };
    if (line === '') continue;
    if (line.startsWith('</')) closeBlock(line, here, open, state);
    else if (line.startsWith('<')) openBlock(line, here, open, state);
    else open[open.length - 1]!.children.push(...directiveLine(line, here, state));
  }
  for (const unclosed of open.slice(1)) {
    state.diagnostics.push({ file, line: unclosed.line, message: `<${unclosed.type}> is never closed` });
  }
  return root.children;
}

function parseFile(file: string, state: ParseState, includedAt: At | null): ConfigNode[] {
  const at = includedAt ?? { file, line: 0 };
  if (state.stack.includes(file)) {
    const chain = [...state.stack, file].map((f) => basename(f)).join(' -> ');
    state.diagnostics.push({ ...at, message: `include cycle: ${chain}` });
    return [];
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    state.diagnostics.push({ ...at, message: `cannot read ${file}: ${code}` });
    return [];
  }
  if (!state.files.includes(file)) state.files.push(file);
  state.stack.push(file);
  const nodes = parseText(text, file, state);
  state.stack.pop();
  return nodes;
}

/** Strip one level of matching quotes. */
export function unquote(text: string): string {
  const s = text.trim();
  if (s.length >= 2 && (s[0] === '"' || s[0] === "'") && s[s.length - 1] === s[0]) {
    return s.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  return s;
}

export interface SyntaxTree {
  nodes: ConfigNode[];
  files: string[];
  diagnostics: Diagnostic[];
}

export function parseConfigFile(path: string): SyntaxTree {
  const state: ParseState = { diagnostics: [], files: [], stack: [] };
  const nodes = parseFile(resolve(path), state, null);
  return { nodes, files: state.files, diagnostics: state.diagnostics };
}
