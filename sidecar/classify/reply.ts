/**
 * Turn what an MTA logged into evidence: strip the DSN and MTA wrappers (Postfix's `host X[ip] said: …
 * (in reply to RCPT TO command)`, Exim's `SMTP error from remote mail server after RCPT TO:<x>: …`,
 * Sendmail's `>>> RCPT To:<x> <<< 550 …`, Exchange's `Remote Server returned '…'`, qmail's `Remote host
 * said:`, Cisco's `('550', ['…'])`), note the SMTP stage the wrapper names, join multi-line replies,
 * pull out the basic and enhanced status codes (also when a wrapper puts them late in the text), and
 * lower-case the text once for the phrase pass.
 */

/** The SMTP stage a reply answered. `connect` is the greeting (or the connection itself). */
export type SmtpStage = 'connect' | 'ehlo' | 'starttls' | 'auth' | 'mail' | 'rcpt' | 'data' | 'eod';

export const SMTP_STAGES: readonly SmtpStage[] = [
  'connect',
  'ehlo',
  'starttls',
  'auth',
  'mail',
  'rcpt',
  'data',
  'eod',
];

export interface EnhancedCode {
  cls: string;
  subject: string;
  detail: string;
}

export interface ParsedReply {
  /** The reply with wrappers removed, whitespace collapsed and code repeats dropped. */
  text: string;
  /** `text` with accents removed (Orange's French, GMX's German): what phrase rules match, ignoring case. */
  plain: string;
  /** Basic reply code (e.g. 550), or null for MTA-generated texts. */
  basic: number | null;
  /** Enhanced status code (e.g. 5.1.1), or null. */
  enhanced: EnhancedCode | null;
  /**
   * True when the enhanced code is not the remote reply's own but what a log line or DSN wrapper says
   * (Postfix `dsn=`, Zoho's `failed,5.1.1 (…),smtp;553 …`): weaker evidence that phrases may override.
   */
  enhancedFromWrapper: boolean;
  /** Stage named by the wrapper (the caller's context overrides it), or null. */
  stage: SmtpStage | null;
  /** Wrappers recognised, outermost first (e.g. `postfix`, `exim`). */
  wrappers: string[];
  /** The remote host the wrapper names, if any. */
  host: string | null;
}

const COMMAND_STAGE: ReadonlyArray<[RegExp, SmtpStage]> = [
  [/^end of (?:data|message)/i, 'eod'],
  [/^(?:data|message body)\b/i, 'data'],
  [/^(?:pipelined )?rcpt\b/i, 'rcpt'],
  [/^mail\b/i, 'mail'],
  [/^(?:ehlo|helo|lhlo)\b/i, 'ehlo'],
  [/^starttls\b/i, 'starttls'],
  [/^auth\b/i, 'auth'],
  [/^(?:initial connection|(?:initial )?(?:server )?greeting|connect|banner)\b/i, 'connect'],
];

/** `RCPT TO`, `end of DATA`, `MAIL FROM:<x> SIZE=10` … → stage. */
export function stageOfCommand(command: string): SmtpStage | null {
  const c = command.trim();
  for (const [re, stage] of COMMAND_STAGE) if (re.test(c)) return stage;
  return null;
}

interface Unwrapped {
  text: string;
  /** The status code the MTA's log line gives (Postfix/Sendmail `dsn=`), used when the reply has none. */
  dsn: EnhancedCode | null;
  stage: SmtpStage | null;
  wrappers: string[];
  host: string | null;
}

/** A whole Postfix or Sendmail log line: `… dsn=5.1.1, status=bounced (…)` / `… dsn=5.1.1, stat=…`. */
const LOG_LINE = /\bdsn=([245])\.(\d{1,3})\.(\d{1,3}), (?:status=\w+ \((.*)\)|stat=(.*))\s*$/;
const POSTFIX_SAID =
  /(?:^|[\s:])host (\S+?)\[[^\]]*\](?::\d+)? (said|refused to talk to me):\s*(.*?)(?:\s*\(in reply to ([^)]*?) command\))?\.?\s*$/i;
const POSTFIX_IN_REPLY = /\s*\(in reply to ([^)]*?) command\)\.?\s*$/i;
const POSTFIX_NO_REPLY =
  /\b(?:lost connection with|conversation with) (\S+?)\[[^\]]*\] (?:timed out )?while (?:receiving the initial server greeting|sending ([a-z ]+?)(?: command)?|performing the (ehlo|helo|starttls) handshake|receiving the (?:initial )?server greeting)\b/i;
const EXIM =
  /SMTP error from remote (?:mail server|mailer|server) after ((?:pipelined )?(?:RCPT TO|MAIL FROM|end of data|DATA|initial connection|EHLO|HELO|STARTTLS|AUTH)[^:]*?)(?::<[^>]*>(?: [^:]*)?)?:\s*(?:host:? (\S+) \[[^\]]*\]:\s*)?(.*)$/i;
const SENDMAIL = /(?:^|\s)>>> ([A-Z]+(?: [A-Za-z]+)?)(?::<[^>]*>)?[^<]*<<<\s*(.*)$/;
const EXCHANGE = /Remote Server returned '([^']*)'/i;
const CISCO = /\('([245]\d\d)',\s*\[(.*)\]\)/;
/** Cisco/IronPort DSN text: `5.1.0 - Unknown address error '550 …' (delivery attempts: 0)`. */
const CISCO_QUOTED = /^[245]\.[\dx]\.\d+ - [A-Za-z ]+ error '(.*)'\s*\(delivery attempts: \d+\)$/i;
const QMAIL = /Remote host said:\s*(.*)$/i;
/** A three-digit number that could be a reply code: the late-code search runs only when one occurs. */
const ANY_CODE = /[245]\d\d/;
const LATE_CODE =
  /(?:^|[\s;:'"([=])([245]\d\d)[ -]([245]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)|(?:said|returned|reply|replied|response|error|reason|diagnostic-code|smtp)\s*(?:was|is)?[:;]?\s*['"]?([245]\d\d)[ -](?=[A-Za-z<#])/i;

/** Any wrapper's marker, as the MTA writes it: most replies carry no wrapper and skip the wrapper regexes. */
const ANY_WRAPPER =
  /dsn=| said:|refused to talk|\(in reply to |connection with|conversation with|SMTP error from remote|>>> |Remote Server returned|\('|delivery attempts:|Remote host said:/;

function unwrap(raw: string): Unwrapped {
  let t = raw.includes('\\n') ? raw.replace(/\\n/g, ' ') : raw;
  if (messySpace(t)) t = t.replace(/\s+/g, ' ');
  const u: Unwrapped = { text: t.trim(), dsn: null, stage: null, wrappers: [], host: null };
  const dsn = /^(?:diagnostic-code:\s*)?(smtp|x-postfix|x-unix)\s*;\s*/i.exec(u.text);
  if (dsn) {
    u.wrappers.push('dsn');
    u.text = u.text.slice(dsn[0].length);
  }
  if (ANY_WRAPPER.test(u.text)) unwrapMta(u);
  if (u.text.startsWith('#')) u.text = u.text.replace(/^#(?=\d{3}\s)/, '');
  if (u.text.endsWith('##')) u.text = u.text.replace(/\s*##$/, '');
  u.text = u.text.trim();
  return u;
}

/** Each wrapper regex runs only when its own marker occurs. */
function unwrapMta(u: Unwrapped): void {
  let t = u.text;
  const wrappers = u.wrappers;
  let stage: SmtpStage | null = null;
  let host: string | null = null;
  const log = t.includes('dsn=') ? LOG_LINE.exec(t) : null;
  if (log) {
    wrappers.push(log[4] !== undefined ? 'postfix-log' : 'sendmail-log');
    u.dsn = { cls: log[1]!, subject: log[2]!, detail: log[3]! };
    t = (log[4] ?? log[5]!).trim();
    const dsn = /^(smtp|x-postfix|x-unix)\s*;\s*/i.exec(t);
    if (dsn) t = t.slice(dsn[0].length);
  }
  const pf = t.includes(' said:') || t.includes('refused to talk') ? POSTFIX_SAID.exec(t) : null;
  if (pf) {
    wrappers.push('postfix');
    host = pf[1]!;
    t = pf[3]!;
    stage = pf[2]!.toLowerCase().startsWith('refused') ? 'connect' : pf[4] ? stageOfCommand(pf[4]) : null;
  } else {
    const ir = t.includes('(in reply to ') ? POSTFIX_IN_REPLY.exec(t) : null;
    if (ir) {
      wrappers.push('postfix');
      stage = stageOfCommand(ir[1]!);
      t = t.slice(0, ir.index);
    }
    const nr =
      t.includes('connection with') || t.includes('conversation with') ? POSTFIX_NO_REPLY.exec(t) : null;
    if (nr) {
      wrappers.push('postfix');
      host = nr[1]!;
      stage = nr[2] ? stageOfCommand(nr[2]) : nr[3] ? stageOfCommand(nr[3]) : 'connect';
    }
  }
  const ex = t.includes('SMTP error from remote') ? EXIM.exec(t) : null;
  if (ex) {
    wrappers.push('exim');
    stage = stageOfCommand(ex[1]!);
    if (ex[2]) host = ex[2];
    t = ex[3]!;
  }
  const sm = t.includes('>>> ') ? SENDMAIL.exec(t) : null;
  if (sm) {
    wrappers.push('sendmail');
    stage = stageOfCommand(sm[1]!);
    t = sm[2]!;
  }
  const exch = t.includes('Remote Server returned') ? EXCHANGE.exec(t) : null;
  if (exch) {
    wrappers.push('exchange');
    t = exch[1]!;
  }
  const cisco = t.includes("('") ? CISCO.exec(t) : null;
  if (cisco) {
    wrappers.push('cisco');
    t = `${cisco[1]} ${cisco[2]!.replace(/['"]/g, '')}`;
  }
  const ciscoQuoted = t.includes('delivery attempts:') ? CISCO_QUOTED.exec(t) : null;
  if (ciscoQuoted) {
    wrappers.push('cisco');
    t = ciscoQuoted[1]!;
  }
  const qm = t.includes('Remote host said:') ? QMAIL.exec(t) : null;
  if (qm) {
    wrappers.push('qmail');
    if (/sender was rejected/i.test(t)) stage = 'mail';
    t = qm[1]!;
  }
  u.text = t;
  u.stage = stage;
  u.host = host;
}

/** Whitespace that is not single spaces (cheaper than a regex scan: most replies have none). */
function messySpace(t: string): boolean {
  return t.includes('  ') || t.includes('\n') || t.includes('\t') || t.includes('\r') || t.includes('\u00a0');
}
const HEAD = /^([245]\d\d)(?:[- ]|$)(?:([245])\.(\d{1,3})\.(\d{1,3})(?=[\s,;:.]|$))?/;
const ENHANCED = /(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)/;
const NON_ASCII = /[^\x00-\x7f]/;
const COMBINING = /[\u0300-\u036f]/g;

/** Strip accents so phrases are written once, in ASCII (`ß` → `ss`, typographic quotes → `'`). */
export function stripAccents(text: string): string {
  return NON_ASCII.test(text)
    ? text.normalize('NFD').replace(COMBINING, '').replace(/ß/g, 'ss').replace(/[‘’]/g, "'")
    : text;
}

/** What a phrase must be written as: lower-case, accents stripped. */
export function fold(text: string): string {
  return stripAccents(text.toLowerCase());
}

/** Continuation lines repeat the code (and usually the enhanced code): `550-5.1.1 … 550 5.1.1 …`. */
function dropRepeats(text: string, code: string, enh: string): string {
  const needle = ` ${code}`;
  let out = '';
  let from = 0;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, from)) {
    const after = at + needle.length;
    const sep = text[after];
    if (sep !== '-' && sep !== ' ') {
      out += text.slice(from, after);
      from = after;
      continue;
    }
    let next = after + 1;
    if (enh !== '' && text.startsWith(enh, next)) {
      next += enh.length;
      while (text[next] === ' ') next++;
    }
    out += `${text.slice(from, at)} `;
    from = next;
  }
  if (from === 0) return text;
  out += text.slice(from);
  return (messySpace(out) ? out.replace(/\s+/g, ' ') : out).trim();
}

export function parseReply(raw: string): ParsedReply {
  const u = unwrap(raw);
  let text = u.text;
  // Where the reply proper starts: at once, or where a wrapper that is not recognised puts the code.
  let at = 0;
  let head = HEAD.exec(text);
  if (!head && ANY_CODE.test(text)) {
    const late = LATE_CODE.exec(text);
    if (late) {
      at = late.index + late[0].indexOf(late[1] ?? late[3]!);
      head = HEAD.exec(text.slice(at));
    }
  }
  const basic = head ? Number(head[1]) : null;
  let enhanced: EnhancedCode | null = null;
  if (head?.[2]) enhanced = { cls: head[2], subject: head[3]!, detail: head[4]! };
  if (head) {
    const code = head[1]!;
    const enh = head[2] ? `${head[2]}.${head[3]}.${head[4]}` : '';
    // The text before a late code stays: it often says more than the reply (Gmail's bounce texts).
    text = `${text.slice(0, at)}${code} ${dropRepeats(text.slice(at + code.length + 1), code, enh)}`.trim();
  }
  let enhancedFromWrapper = false;
  if (!enhanced) {
    const m = ENHANCED.exec(at === 0 ? text : text.slice(at));
    const wrapped = m || at === 0 ? null : ENHANCED.exec(text.slice(0, at));
    const found = m ?? wrapped;
    if (found) enhanced = { cls: found[1]!, subject: found[2]!, detail: found[3]! };
    else enhanced = u.dsn;
    enhancedFromWrapper = enhanced !== null && !m;
  }
  return {
    text,
    plain: stripAccents(text),
    basic,
    enhanced,
    enhancedFromWrapper,
    stage: u.stage,
    wrappers: u.wrappers,
    host: u.host,
  };
}
