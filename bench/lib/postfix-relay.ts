/**
 * Postfix's own relay rate on the same load, for the engine benchmarks' same-run comparison: Postfix's
 * C load generator `smtp-source` submits to a private Postfix (default fsync'd queue), whose transport
 * map sends each domain straight to a sink; the rate is measured until the maillog shows every message
 * `status=sent`.
 */
import { spawn } from 'node:child_process';
import { until } from '../../harness/index.js';

export interface SmtpSourceLoad {
  host: string;
  port: number;
  sessions: number;
  messages: number;
  size: number;
  from: string;
  to: string;
}

/** Run Postfix's `smtp-source` to completion. */
export function smtpSource(load: SmtpSourceLoad): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = [
      '-s',
      String(load.sessions),
      '-m',
      String(load.messages),
      '-l',
      String(load.size),
      '-f',
      load.from,
      '-t',
      load.to,
      `${load.host}:${load.port}`,
    ];
    const child = spawn('/usr/sbin/smtp-source', args, { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`smtp-source exited ${code}`))));
  });
}

/**
 * Submit `messages` spread evenly over `domains` (one smtp-source per domain, sessions split among
 * them) and wait until Postfix has relayed them all; returns messages per second.
 */
export async function postfixRelayRate(opts: {
  host: string;
  port: number;
  readLog(): string;
  domains: string[];
  messages: number;
  sessions: number;
  size: number;
}): Promise<number> {
  const per = Math.ceil(opts.messages / opts.domains.length);
  const total = per * opts.domains.length;
  const domainRe = opts.domains.map((d) => d.replace(/\./g, '\\.')).join('|');
  const sentRe = new RegExp(`to=<[^>]*@(?:${domainRe})>.*status=sent`, 'g');
  const sent = () => opts.readLog().match(sentRe)?.length ?? 0;
  const before = sent();
  const t0 = Date.now();
  await Promise.all(
    opts.domains.map((d) =>
      smtpSource({
        host: opts.host,
        port: opts.port,
        sessions: Math.max(1, Math.round(opts.sessions / opts.domains.length)),
        messages: per,
        size: opts.size,
        from: 'bench@app.test',
        to: `user@${d}`,
      }),
    ),
  );
  await until(() => sent() - before >= total, 600_000, `${total} Postfix deliveries`, 100);
  return (total / (Date.now() - t0)) * 1000;
}
