/**
 * Turn what an MTA logged into one comparable line: strip DSN and MTA wrappers (`smtp;`, Postfix's
 * `host X[ip] said: … (in reply to RCPT TO command)`, Exim's `SMTP error from remote mail server after
 * RCPT TO:<x>: host X [ip]:`), join multi-line replies (`550-5.1.1 … 550 5.1.1 …`), and pull out the
 * basic and enhanced status codes.
 */
export interface ParsedReply {
  /** The normalised reply text the rules match against. */
  text: string;
  /** Basic reply code (e.g. 550), or null for non-SMTP failures. */
  basic: number | null;
  /** Enhanced status code (e.g. 5.1.1), or null. */
  enhanced: { cls: string; subject: string; detail: string } | null;
  /** A 4xx reply, a 4.x.x status, or a non-SMTP failure that says it is temporary. */
  transient: boolean;
}

const ENHANCED = /(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)/;

function unwrap(s: string): string {
  let t = s.replace(/\\n/g, ' ').replace(/\s+/g, ' ').trim();
  t = t.replace(/^(?:diagnostic-code:\s*)?(?:smtp|x-postfix|x-unix)\s*;\s*/i, '');
  // Postfix: `<rcpt>: host mx[ip] said: …` or `host mx[ip] refused to talk to me: …`
  const postfix = /(?:^|\s|:)host \S+\[[^\]]*\](?::\d+)? (?:said|refused to talk to me):\s*(.*)$/i.exec(t);
  if (postfix) t = postfix[1]!;
  // Exim: `SMTP error from remote mail server after RCPT TO:<x>: [host X [ip]:] 550 …`
  const exim =
    /SMTP error from remote (?:mail server|mailer) after [^:]*(?::<[^>]*>)?:\s*(?:host \S+ \[[^\]]*\]:\s*)?(.*)$/i.exec(
      t,
    );
  if (exim) t = exim[1]!;
  t = t.replace(/\s*\(in reply to [^)]*\)\.?\s*$/i, '');
  // Exchange NDR text: `Remote Server returned '550 5.1.1 …'` and `#550 5.1.1 … ##`
  const exch = /Remote Server returned '([^']*)'/i.exec(t);
  if (exch) t = exch[1]!;
  t = t.replace(/^#(?=\d{3}\s)/, '').replace(/\s*##\s*$/, '');
  return t.trim();
}

export function parseReply(raw: string): ParsedReply {
  let text = unwrap(raw);
  const head = /^([245]\d\d)(?:[- ]|$)(?:([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$))?/.exec(text);
  const basic = head ? Number(head[1]) : null;
  let enhanced: ParsedReply['enhanced'] = null;
  if (head?.[2]) enhanced = { cls: head[2], subject: head[3]!, detail: head[4]! };
  if (head) {
    // Continuation lines repeat the code (and usually the enhanced code); drop the repeats.
    const enh = head[2] ? `(?:${head[2]}\\.${head[3]}\\.${head[4]}\\s*)?` : '';
    const cont = new RegExp(`\\s${head[1]}[- ]${enh}`, 'g');
    text = text.slice(0, head[0].length) + text.slice(head[0].length).replace(cont, ' ');
    text = text
      .replace(/^(\d{3})-/, '$1 ')
      .replace(/\s+/g, ' ')
      .trim();
  }
  if (!enhanced) {
    const m = ENHANCED.exec(text);
    if (m) enhanced = { cls: m[1]!, subject: m[2]!, detail: m[3]! };
  }
  let transient: boolean;
  if (basic !== null) transient = basic >= 400 && basic < 500;
  else if (enhanced) transient = enhanced.cls === '4';
  else
    transient =
      /\btry again\b|\btemporar(y|ily)\b|deferred/i.test(text) || !/not found|does not exist/i.test(text);
  return { text, basic, enhanced, transient };
}
