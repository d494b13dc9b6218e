/** `/regex/flags rest` literals as used by smtp-pattern-list and bounce-category-patterns lines. */
import { ValueError } from './units.js';

export interface RegexLiteral {
  regex: RegExp;
  /** Source text of the literal as written, e.g. `/TSS04/i`. */
  literal: string;
  /** Text after the literal, trimmed. */
  rest: string;
}

export function parseRegexLiteral(text: string): RegexLiteral {
  const s = text.trimStart();
  if (!s.startsWith('/')) throw new ValueError(`expected /regex/ but found '${s.slice(0, 20)}'`);
  let i = 1;
  for (; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === '/') break;
  }
  if (i >= s.length) throw new ValueError(`unterminated regex ${s}`);
  const body = s.slice(1, i);
  const flagMatch = /^[a-z]*/.exec(s.slice(i + 1))!;
  const flags = flagMatch[0];
  if (/[^imsu]/.test(flags)) throw new ValueError(`unsupported regex flags '${flags}' (use i, m, s or u)`);
  let regex: RegExp;
  try {
    regex = new RegExp(body, flags);
  } catch (err) {
    throw new ValueError(
      `invalid regex /${body}/: ${(err as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /, '')}`,
    );
  }
  const end = i + 1 + flags.length;
  return { regex, literal: s.slice(0, end), rest: s.slice(end).trim() };
}
