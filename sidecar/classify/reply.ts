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
  /** `text` lower-cased, accents removed: what phrase rules match. */
  folded: string;
  /** Basic reply code (e.g. 550), or null for MTA-generated texts. */
  basic: number | null;
  /** Enhanced status code (e.g. 5.1.1), or null. */
  enhanced: EnhancedCode | null;
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
  stage: SmtpStage | null;
  wrappers: string[];
  host: string | null;
}

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
const LATE_CODE =
  /(?:^|[\s;:'"([=])([245]\d\d)[ -]([245]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)|(?:said|returned|reply|replied|response|error|reason|diagnostic-code|smtp)\s*(?:was|is)?[:;]?\s*['"]?([245]\d\d)[ -](?=[A-Za-z<#])/i;

function unwrap(raw: string): Unwrapped {
  let t = raw.replace(/\\n/g, ' ').replace(/\s+/g, ' ').trim();
  const wrappers: string[] = [];
  let stage: SmtpStage | null = null;
  let host: string | null = null;
  const dsn = /^(?:diagnostic-code:\s*)?(smtp|x-postfix|x-unix)\s*;\s*/i.exec(t);
  if (dsn) {
    wrappers.push('dsn');
    t = t.slice(dsn[0].length);
  }
  const pf = POSTFIX_SAID.exec(t);
  if (pf) {
    wrappers.push('postfix');
    host = pf[1]!;
    t = pf[3]!;
    stage = pf[2]!.toLowerCase().startsWith('refused') ? 'connect' : pf[4] ? stageOfCommand(pf[4]) : null;
  } else {
    const ir = POSTFIX_IN_REPLY.exec(t);
    if (ir) {
      wrappers.push('postfix');
      stage = stageOfCommand(ir[1]!);
      t = t.slice(0, ir.index);
    }
    const nr = POSTFIX_NO_REPLY.exec(t);
    if (nr) {
      wrappers.push('postfix');
      host = nr[1]!;
      stage = nr[2] ? stageOfCommand(nr[2]) : nr[3] ? stageOfCommand(nr[3]) : 'connect';
    }
  }
  const ex = EXIM.exec(t);
  if (ex) {
    wrappers.push('exim');
    stage = stageOfCommand(ex[1]!);
    if (ex[2]) host = ex[2];
    t = ex[3]!;
  }
  const sm = SENDMAIL.exec(t);
  if (sm) {
    wrappers.push('sendmail');
    stage = stageOfCommand(sm[1]!);
    t = sm[2]!;
  }
  const exch = EXCHANGE.exec(t);
  if (exch) {
    wrappers.push('exchange');
    t = exch[1]!;
  }
  const cisco = CISCO.exec(t);
  if (cisco) {
    wrappers.push('cisco');
    t = `${cisco[1]} ${cisco[2]!.replace(/['"]/g, '')}`;
  }
  const ciscoQuoted = CISCO_QUOTED.exec(t);
  if (ciscoQuoted) {
    wrappers.push('cisco');
    t = ciscoQuoted[1]!;
  }
  const qm = QMAIL.exec(t);
  if (qm) {
    wrappers.push('qmail');
    if (/sender was rejected/i.test(t)) stage = 'mail';
    t = qm[1]!;
  }
  t = t.replace(/^#(?=\d{3}\s)/, '').replace(/\s*##\s*$/, '');
  return { text: t.trim(), stage, wrappers, host };
}

const HEAD = /^([245]\d\d)(?:[- ]|$)(?:([245])\.(\d{1,3})\.(\d{1,3})(?=[\s,;:.]|$))?/;
const ENHANCED = /(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)/;
const NON_ASCII = /[^\x00-\x7f]/;
const COMBINING = /[\u0300-\u036f]/g;

/** Lower-case and strip accents (Orange's French, GMX's German) so phrases are written once, in ASCII. */
export function fold(text: string): string {
  const lower = text.toLowerCase();
  return NON_ASCII.test(lower)
    ? lower.normalize('NFD').replace(COMBINING, '').replace(/ß/g, 'ss').replace(/[‘’]/g, "'")
    : lower;
}

function dropRepeats(text: string, code: string, enh: string): string {
  // Continuation lines repeat the code (and usually the enhanced code): `550-5.1.1 … 550 5.1.1 …`.
  const cont = new RegExp(`\\s${code}[- ]${enh ? `(?:${enh.replace(/\./g, '\\.')}\\s*)?` : ''}`, 'g');
  return text.replace(cont, ' ').replace(/\s+/g, ' ').trim();
}

export function parseReply(raw: string): ParsedReply {
  const u = unwrap(raw);
  let text = u.text;
  let head = HEAD.exec(text);
  if (!head) {
    const late = LATE_CODE.exec(text);
    if (late) {
      const at = late.index + late[0].indexOf(late[1] ?? late[3]!);
      text = text.slice(at);
      head = HEAD.exec(text);
    }
  }
  const basic = head ? Number(head[1]) : null;
  let enhanced: EnhancedCode | null = null;
  if (head?.[2]) enhanced = { cls: head[2], subject: head[3]!, detail: head[4]! };
  if (head) {
    const enh = head[2] ? `${head[2]}.${head[3]}.${head[4]}` : '';
    text = `${head[1]} ${dropRepeats(text.slice(head[1]!.length + 1), head[1]!, enh)}`.trim();
  }
  if (!enhanced) {
    const m = ENHANCED.exec(text);
    if (m) enhanced = { cls: m[1]!, subject: m[2]!, detail: m[3]! };
  }
  return {
    text,
    folded: fold(text),
    basic,
    enhanced,
    stage: u.stage,
    wrappers: u.wrappers,
    host: u.host,
  };
}
