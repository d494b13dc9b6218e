/**
 * House rule check, run by `npm test`: no source file over 400 lines, and no function in sidecar/ over
 * 80 lines. Functions are found with the TypeScript parser (declarations, methods, arrows and function
 * expressions); a function's length runs from its first line to its last, nested functions included,
 * so a module written as one big closure shows up as the closure it is.
 *
 *   node --import tsx scripts/check-size.ts [--max-file 400] [--max-function 80] [--list]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import ts from 'typescript';

const { values } = parseArgs({
  options: {
    'max-file': { type: 'string', default: '400' },
    'max-function': { type: 'string', default: '80' },
    list: { type: 'boolean', default: false },
  },
});
const MAX_FILE = Number(values['max-file']);
const MAX_FUNCTION = Number(values['max-function']);
const root = join(import.meta.dirname, '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

interface Long {
  file: string;
  line: number;
  name: string;
  lines: number;
}

function functionName(node: ts.Node, sf: ts.SourceFile): string {
  const named = node as { name?: ts.Node };
  if (named.name) return named.name.getText(sf);
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent)) return parent.name.getText(sf);
  if (parent && ts.isPropertyAssignment(parent)) return parent.name.getText(sf);
  if (parent && ts.isCallExpression(parent))
    return `${parent.expression.getText(sf).slice(0, 40)}(…) callback`;
  return '(anonymous)';
}

function longFunctions(file: string): Long[] {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: Long[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = end - start + 1;
      if (lines > MAX_FUNCTION) {
        found.push({ file: relative(root, file), line: start + 1, name: functionName(node, sf), lines });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

const files = ['sidecar', 'harness', 'test', 'bench', 'scripts'].flatMap((d) => sources(join(root, d)));
const bigFiles = files
  .map((f) => ({ file: relative(root, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
  .filter((f) => f.lines > MAX_FILE);
const longFns = files.filter((f) => relative(root, f).startsWith('sidecar/')).flatMap(longFunctions);

for (const f of bigFiles) process.stdout.write(`${f.file}: ${f.lines} lines (max ${MAX_FILE})\n`);
for (const f of longFns)
  process.stdout.write(`${f.file}:${f.line}: function ${f.name} is ${f.lines} lines (max ${MAX_FUNCTION})\n`);
const problems = bigFiles.length + longFns.length;
process.stdout.write(
  `check-size: ${files.length} files; ${bigFiles.length} over ${MAX_FILE} lines, ${longFns.length} functions in sidecar/ over ${MAX_FUNCTION} lines\n`,
);
process.exitCode = problems > 0 ? 1 : 0;
