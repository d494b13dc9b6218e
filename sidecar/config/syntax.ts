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

function parseFile(
  file: string,
  state: ParseState,
  includedAt: { file: string; line: number } | null,
): ConfigNode[] {
  if (state.stack.includes(file)) {
    const at = includedAt ?? { file, line: 0 };
    state.diagnostics.push({
      ...at,
      message: `include cycle: ${[...state.stack, file].map((f) => basename(f)).join(' -> ')}`,
    });
    return [];
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const at = includedAt ?? { file, line: 0 };
    state.diagnostics.push({ ...at, message: `cannot read ${file}: ${code}` });
    return [];
  }
  if (!state.files.includes(file)) state.files.push(file);
  state.stack.push(file);
  const root: BlockNode = { kind: 'block', type: '', name: null, children: [], file, line: 0 };
  const open: BlockNode[] = [root];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = stripComment(lines[i]!).trim();
    if (line === '') continue;
    const here = { file, line: lineNo };
    const top = open[open.length - 1]!;
    if (line.startsWith('</')) {
      const m = /^<\/\s*([\w-]+)\s*>$/.exec(line);
      if (!m) {
        state.diagnostics.push({ ...here, message: `malformed closing tag '${line}'` });
        continue;
      }
      const type = m[1]!.toLowerCase();
      if (open.length === 1 || top.type !== type) {
        const expected = open.length > 1 ? `</${top.type}> (opened at line ${top.line})` : 'no closing tag';
        state.diagnostics.push({ ...here, message: `unexpected </${type}>, expected ${expected}` });
        continue;
      }
      open.pop();
      continue;
    }
    if (line.startsWith('<')) {
      const m = /^<\s*([\w-]+)(?:\s+([^>]*?))?\s*>$/.exec(line);
      if (!m) {
        state.diagnostics.push({ ...here, message: `malformed block tag '${line}'` });
        continue;
      }
      const block: BlockNode = {
        kind: 'block',
        type: m[1]!.toLowerCase(),
        name: m[2] ? m[2] : null,
        children: [],
        ...here,
      };
      top.children.push(block);
      open.push(block);
      continue;
    }
    if (line.startsWith('/')) {
      // A bare `/regex/ …` rule line (bounce-category-patterns): no directive name.
      top.children.push({ kind: 'directive', name: '', value: line, ...here });
      continue;
    }
    const m = /^([A-Za-z][\w.-]*)(?:\s+(.*))?$/.exec(line);
    if (!m) {
      state.diagnostics.push({ ...here, message: `cannot parse '${line}'` });
      continue;
    }
    const name = m[1]!.toLowerCase();
    const value = (m[2] ?? '').trim();
    if (name === 'include') {
      if (value === '') {
        state.diagnostics.push({ ...here, message: 'include needs a file name or glob' });
        continue;
      }
      const targets = expandInclude(unquote(value), file);
      if (!/[*?]/.test(value) && !existsSync(targets[0]!)) {
        state.diagnostics.push({ ...here, message: `include: no such file ${targets[0]}` });
        continue;
      }
      for (const target of targets) top.children.push(...parseFile(target, state, here));
      continue;
    }
    top.children.push({ kind: 'directive', name, value, ...here });
  }
  for (const unclosed of open.slice(1)) {
    state.diagnostics.push({
      file,
      line: unclosed.line,
      message: `<${unclosed.type}> is never closed`,
    });
  }
  state.stack.pop();
  return root.children;
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
