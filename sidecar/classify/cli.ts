/** `freight classify`: one SMTP reply per line on stdin → bounce category and hard/soft. */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { Command } from '../common/command.js';
import { errorMessage } from '../common/errors.js';
import { fail, printJson, printRows } from '../common/output.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { BounceClassifier, type Explanation, type OperatorRule } from './classifier.js';
import { SMTP_STAGES, type SmtpStage } from './reply.js';

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
    usage:
      'freight classify [--json] [--explain] [--stage STAGE] [--rules FILE] [--config FILE]   (replies on stdin, one per line)',
    async run(argv) {
      try {
        const { values } = parseArgs({
          args: argv,
          options: {
            json: { type: 'boolean', default: false },
            explain: { type: 'boolean', default: false },
            stage: { type: 'string' },
            config: { type: 'string' },
            rules: { type: 'string' },
          },
        });
        const stage = values.stage as SmtpStage | undefined;
        if (stage !== undefined && !SMTP_STAGES.includes(stage))
          return fail(`--stage ${stage}: expected one of ${SMTP_STAGES.join(', ')}`);
        const classifier = BounceClassifier.load({
          operatorRules: operatorRules(values.config, values.config !== undefined),
          file: values.rules,
        });
        const rows: Array<{ category: string; hard: boolean; rule: string; reply: string }> = [];
        const explained: Array<Explanation & { reply: string }> = [];
        for await (const line of createInterface({
          input: process.stdin,
          crlfDelay: Number.POSITIVE_INFINITY,
        })) {
          if (line.trim() === '') continue;
          if (values.explain) explained.push({ ...classifier.explain(line, { stage }), reply: line });
          else {
            const c = classifier.classify(line, { stage });
            rows.push({ category: c.category, hard: c.hard, rule: c.rule, reply: line });
          }
        }
        if (values.explain) {
          if (values.json) printJson(explained);
          else process.stdout.write(explained.map(renderExplanation).join('\n'));
        } else if (values.json) printJson(rows);
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

/** The evidence, one fact a line, then the decision and the rule that made it. */
export function renderExplanation(e: Explanation & { reply: string }): string {
  const lines = [`reply:     ${e.reply}`];
  lines.push(`stage:     ${e.stage ?? 'unknown'}${e.stageFrom ? ` (from the ${e.stageFrom})` : ''}`);
  lines.push(
    `wrapper:   ${e.wrappers.length > 0 ? e.wrappers.join(' > ') : 'none'}${e.host ? `, host ${e.host}` : ''}`,
  );
  lines.push(`provider:  ${e.provider ?? 'not recognised'}`);
  lines.push(`basic:     ${e.basic ?? 'none'}${e.basicMeaning ? ` (${e.basicMeaning})` : ''}`);
  const status = e.status
    ? `; ${e.status.rule} → ${e.status.category}${e.status.generic ? ', generic' : ''}`
    : '';
  lines.push(
    `enhanced:  ${e.enhanced ?? 'none'}${e.enhancedMeaning ? ` (RFC 3463: ${e.enhancedMeaning})` : ''}${status}`,
  );
  if (e.phrases.length === 0) lines.push('phrases:   none');
  for (const p of e.phrases)
    lines.push(
      `phrase:    ${p.term} → ${p.category}${p.eligible ? '' : ' (not eligible: a specific code or the stage stands)'}`,
    );
  if (e.stageRule) lines.push(`stage rule: ${e.stageRule}`);
  lines.push(
    `decision:  ${e.category}, ${e.hard ? 'hard' : 'soft'}${e.final ? '' : ' (not final)'} by ${e.rule}`,
  );
  return `${lines.join('\n')}\n`;
}
