/** `freight classify`: one SMTP reply per line on stdin → bounce category and hard/soft. */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { Command } from '../cli/command.js';
import { fail, printJson, printRows } from '../cli/output.js';
import { errorMessage } from '../common/errors.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { BounceClassifier, type OperatorRule } from './classifier.js';

function operatorRules(configPath: string | undefined, explicit: boolean): OperatorRule[] {
  // Without --config, a missing default config just means "no operator rules".
  let path: string;
  try {
    path = resolveConfigPath(configPath);
  } catch (err) {
    if (explicit) throw err;
    return [];
  }
  return loadConfig(path).bounceCategoryPatterns.map((p) => ({
    pattern: p.pattern,
    category: p.category,
    source: `${p.file}:${p.line}`,
  }));
}

export const commands: Command[] = [
  {
    name: 'classify',
    summary: 'classify SMTP replies read from stdin (one per line) into bounce categories',
    usage: 'freight classify [--json] [--rules FILE] [--config FILE]   (replies on stdin, one per line)',
    async run(argv) {
      try {
        const { values } = parseArgs({
          args: argv,
          options: {
            json: { type: 'boolean', default: false },
            config: { type: 'string' },
            rules: { type: 'string' },
          },
        });
        const classifier = BounceClassifier.load({
          operatorRules: operatorRules(values.config, values.config !== undefined),
          file: values.rules,
        });
        const rows: Array<{ category: string; hard: boolean; rule: string; reply: string }> = [];
        for await (const line of createInterface({
          input: process.stdin,
          crlfDelay: Number.POSITIVE_INFINITY,
        })) {
          if (line.trim() === '') continue;
          const c = classifier.classify(line);
          rows.push({ category: c.category, hard: c.hard, rule: c.rule, reply: line });
        }
        if (values.json) printJson(rows);
        else
          printRows(
            rows.map((r) => ({
              category: r.category,
              kind: r.hard ? 'hard' : 'soft',
              rule: r.rule,
              reply: r.reply.slice(0, 100),
            })),
            { json: false },
          );
        return 0;
      } catch (err) {
        return fail(errorMessage(err));
      }
    },
  },
];
