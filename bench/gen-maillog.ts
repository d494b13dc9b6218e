/**
 * Writes a realistic Postfix maillog for benchmarks: the line shapes Postfix 3.7 writes (taken from a real
 * private instance, test/fixtures/maillog/postfix-3.7-capture.log) in a production-like mix — smtpd
 * connect/client/disconnect, cleanup message-id, qmgr envelope and removed, smtp deliveries (mostly sent,
 * some deferred and bounced, a few multi-recipient), NOQUEUE rejects, connection errors and statistics.
 *
 *   node --import tsx bench/gen-maillog.ts OUT [LINES]
 */
import { createWriteStream } from 'node:fs';
import { pathToFileURL } from 'node:url';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DOMAINS = [
  'gmail.com',
  'yahoo.com',
  'outlook.com',
  'hotmail.com',
  'aol.com',
  'icloud.com',
  'gmx.de',
  'web.de',
];
const MX: Record<string, string> = {
  'gmail.com': 'gmail-smtp-in.l.google.com[142.250.27.26]:25',
  'yahoo.com': 'mta7.am0.yahoodns.net[67.195.204.72]:25',
  'outlook.com': 'outlook-com.olc.protection.outlook.com[52.101.42.10]:25',
  'hotmail.com': 'hotmail-com.olc.protection.outlook.com[52.101.8.49]:25',
  'aol.com': 'mx-aol.mail.gm0.yahoodns.net[67.195.228.106]:25',
  'icloud.com': 'mx01.mail.icloud.com[17.57.154.6]:25',
  'gmx.de': 'mx00.emig.gmx.net[212.227.15.9]:25',
  'web.de': 'mx-ha02.web.de[212.227.17.8]:25',
};
const DEFERRALS = [
  'host mta7.am0.yahoodns.net[67.195.204.72] said: 421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)',
  "host gmail-smtp-in.l.google.com[142.250.27.26] said: 452-4.2.2 The recipient's inbox is out of storage space. 452 4.2.2 https://support.google.com/mail/?p=OverQuotaTemp (in reply to RCPT TO command)",
  'connect to mx01.mail.icloud.com[17.57.154.6]:25: Connection timed out',
  'host mx00.emig.gmx.net[212.227.15.9] said: 450 4.7.1 Client host rejected: cannot find your hostname (in reply to RCPT TO command)',
];
const BOUNCES = [
  'host gmail-smtp-in.l.google.com[142.250.27.26] said: 550-5.1.1 The email account that you tried to reach does not exist. 550 5.1.1 https://support.google.com/mail/?p=NoSuchUser (in reply to RCPT TO command)',
  'host outlook-com.olc.protection.outlook.com[52.101.42.10] said: 550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). (in reply to RCPT TO command)',
  'host mx-ha02.web.de[212.227.17.8] said: 554-Transaction not permitted 554 5.7.1 rejected due to spam content (in reply to end of DATA command)',
];

/** Small deterministic PRNG so every run writes the same file. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function generateMaillog(out: string, lines: number): Promise<number> {
  const rand = rng(42);
  const ws = createWriteStream(out);
  let written = 0;
  let buf = '';
  const start = Date.UTC(2026, 2, 5, 0, 0, 0);
  let t = start;
  let qseq = 0x1a2b3c400;
  const pid = () => 1000 + Math.floor(rand() * 30000);
  const stamp = () => {
    const d = new Date(t);
    const day = String(d.getUTCDate()).padStart(2, ' ');
    const hms = d.toISOString().slice(11, 19);
    return `${MONTHS[d.getUTCMonth()]} ${day} ${hms} mx1 postfix`;
  };
  const emit = (s: string) => {
    buf += `${s}\n`;
    written++;
    if (buf.length > 1 << 16) {
      ws.write(buf);
      buf = '';
    }
  };
  const smtpdPid = pid();
  while (written < lines) {
    t += Math.floor(rand() * 6);
    const qid = (qseq++).toString(16).toUpperCase();
    const user = `u${Math.floor(rand() * 5_000_000)}`;
    const from = `news-${Math.floor(rand() * 50)}@mailer.example.net`;
    const r = rand();
    if (r < 0.03) {
      const dom = DOMAINS[Math.floor(rand() * DOMAINS.length)]!;
      emit(`${stamp()}/smtpd[${smtpdPid}]: connect from app1.example.net[198.51.100.7]`);
      emit(
        `${stamp()}/smtpd[${smtpdPid}]: NOQUEUE: reject: RCPT from app1.example.net[198.51.100.7]: 554 5.7.1 <${user}@${dom}>: Recipient address rejected: suppressed; from=<${from}> to=<${user}@${dom}> proto=ESMTP helo=<app1.example.net>`,
      );
      emit(
        `${stamp()}/smtpd[${smtpdPid}]: disconnect from app1.example.net[198.51.100.7] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4`,
      );
      continue;
    }
    const nrcpt = rand() < 0.05 ? 2 + Math.floor(rand() * 3) : 1;
    emit(`${stamp()}/smtpd[${smtpdPid}]: connect from app1.example.net[198.51.100.7]`);
    emit(`${stamp()}/smtpd[${smtpdPid}]: ${qid}: client=app1.example.net[198.51.100.7]`);
    emit(`${stamp()}/cleanup[${pid()}]: ${qid}: message-id=<${t}.${qid}@mailer.example.net>`);
    emit(
      `${stamp()}/smtpd[${smtpdPid}]: disconnect from app1.example.net[198.51.100.7] ehlo=1 mail=1 rcpt=${nrcpt} data=1 quit=1 commands=${4 + nrcpt}`,
    );
    emit(
      `${stamp()}/qmgr[812]: ${qid}: from=<${from}>, size=${2000 + Math.floor(rand() * 40000)}, nrcpt=${nrcpt} (queue active)`,
    );
    let pending = false;
    for (let i = 0; i < nrcpt; i++) {
      const dom = DOMAINS[Math.floor(rand() * DOMAINS.length)]!;
      const rcpt = `${user}${i > 0 ? `.${i}` : ''}@${dom}`;
      const delay = (rand() * 3).toFixed(2);
      const delays = `0.0${Math.floor(rand() * 9)}/0/0.${Math.floor(rand() * 9)}/0.${Math.floor(rand() * 9)}`;
      const o = rand();
      const p = pid();
      if (o < 0.86) {
        emit(
          `${stamp()}/smtp[${p}]: ${qid}: to=<${rcpt}>, relay=${MX[dom]}, delay=${delay}, delays=${delays}, dsn=2.0.0, status=sent (250 2.0.0 OK  ${t} ${qid.toLowerCase()}.${i} - gsmtp)`,
        );
      } else if (o < 0.96) {
        const d = DEFERRALS[Math.floor(rand() * DEFERRALS.length)]!;
        if (d.startsWith('connect')) emit(`${stamp()}/smtp[${p}]: ${d}`);
        emit(
          `${stamp()}/smtp[${p}]: ${qid}: to=<${rcpt}>, relay=${d.startsWith('connect') ? 'none' : MX[dom]}, delay=${delay}, delays=${delays}, dsn=4.0.0, status=deferred (${d})`,
        );
        pending = true;
      } else {
        const b = BOUNCES[Math.floor(rand() * BOUNCES.length)]!;
        emit(
          `${stamp()}/smtp[${p}]: ${qid}: to=<${rcpt}>, relay=${MX[dom]}, delay=${delay}, delays=${delays}, dsn=5.0.0, status=bounced (${b})`,
        );
        const ndr = (qseq++).toString(16).toUpperCase();
        emit(`${stamp()}/cleanup[${pid()}]: ${ndr}: message-id=<${t}.${ndr}@mx1.example.net>`);
        emit(`${stamp()}/bounce[977]: ${qid}: sender non-delivery notification: ${ndr}`);
      }
    }
    if (!pending) emit(`${stamp()}/qmgr[812]: ${qid}: removed`);
    if (rand() < 0.002) emit(`${stamp()}/scache[955]: statistics: start interval Mar  5 00:00:00`);
  }
  ws.write(buf);
  await new Promise<void>((resolve, reject) =>
    ws.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
  return written;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write('usage: gen-maillog.ts OUT [LINES]\n');
    process.exit(2);
  }
  const n = await generateMaillog(out, Number(process.argv[3] ?? 1_000_000));
  process.stdout.write(`wrote ${n} lines to ${out}\n`);
}
