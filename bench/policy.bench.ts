/**
 * Policy daemon benchmark: one realistic request stream — full Postfix 3.7 RCPT requests from
 * 2,000 senders of 40 SASL tenants to 12 recipient domains, 1–5 recipients per message — replayed at
 * 50 concurrent connections against `freight policy` and against postfwd2 with an equivalent per-sender
 * rate rule, in the same run. Prints decisions/s and p50/p99 latency of both.
 *
 * `freight policy` runs as in production, compiled (bin/freight.js runs dist/ when built); the sidecar is
 * compiled afresh into the temp dir so that a stale dist/ is never measured. With --tsx it runs from
 * source instead: then the daemon and its persistence worker each carry tsx's module-loader thread, whose
 * idle-time garbage collection a few seconds after start takes both cores at once (this bench's paced
 * p99 with --tsx shows what it costs). The load generator is bench/lib/policy-load.ts, in a process of
 * its own.
 *
 *   node --import tsx bench/policy.bench.ts [--requests 100000] [--connections 50] [--rate 2000]
 *     [--skip-postfwd] [--tsx]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildSidecar } from './lib/build-sidecar.js';
import { requirePeer } from './lib/peer.js';
import { encodeStream, LoadProcess } from './lib/policy-load.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '100000' },
    connections: { type: 'string', default: '50' },
    rate: { type: 'string', default: '2000' },
    'skip-postfwd': { type: 'boolean', default: false },
    tsx: { type: 'boolean', default: false },
  },
});
const TOTAL = Number(values.requests);
const CONNECTIONS = Number(values.connections);
/**
 * Above the rate at which a Postfix on this machine accepts RCPTs (its relay rate, which
 * `engine-inject` measures, is lower still), yet not saturating the daemon.
 */
const PACED_RATE = Number(values.rate);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const POSTFWD = '/usr/sbin/postfwd2';

/** Deterministic PRNG so both servers get the identical stream. */
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

const DOMAINS = ['gmail.com', 'yahoo.com', 'outlook.com', 'hotmail.com', 'aol.com', 'icloud.com', 'gmx.de'];
const DOMAINS_MORE = [...DOMAINS, 'web.de', 'orange.fr', 'comcast.net', 'example.org', 'mail.ru'];

/** One connection's share of the stream: what one smtpd process would send, message after message. */
function streamFor(conn: number, count: number): string[] {
  const r = rng(1000 + conn);
  const out: string[] = [];
  let msg = 0;
  while (out.length < count) {
    msg++;
    // A few very active senders and a long tail, as with real tenants.
    const senderId = r() < 0.3 ? Math.floor(r() * 20) : Math.floor(r() * 2000);
    const tenant = `tenant${senderId % 40}`;
    const sender = `news${senderId}@${tenant}.example.net`;
    const instance = `${(conn * 7919 + msg).toString(16)}.${conn.toString(16)}.0.${msg}`;
    const rcpts = 1 + Math.floor(r() * 5);
    for (let i = 0; i < rcpts && out.length < count; i++) {
      const domain = DOMAINS_MORE[Math.floor(r() * DOMAINS_MORE.length)];
      out.push(
        [
          'request=smtpd_access_policy',
          'protocol_state=RCPT',
          'protocol_name=ESMTP',
          `client_address=10.1.${conn}.${(senderId % 250) + 1}`,
          'client_name=unknown',
          'client_port=40000',
          'reverse_client_name=unknown',
          'server_address=127.0.0.1',
          'server_port=25',
          `helo_name=app${conn}.example.net`,
          `sender=${sender}`,
          `recipient=user${Math.floor(r() * 1e6)}@${domain}`,
          'recipient_count=0',
          'queue_id=',
          `instance=${instance}`,
          'size=0',
          'etrn_domain=',
          'stress=',
          'sasl_method=plain',
          `sasl_username=${tenant}`,
          'sasl_sender=',
          'ccert_subject=',
          'ccert_issuer=',
          'ccert_fingerprint=',
          'ccert_pubkey_fingerprint=',
          'encryption_protocol=TLSv1.3',
          'encryption_cipher=TLS_AES_256_GCM_SHA384',
          'encryption_keysize=256',
          'policy_context=',
          '',
          '',
        ].join('\n'),
      );
    }
  }
  return out;
}

interface Result {
  name: string;
  decisions: number;
  seconds: number;
  p50: number;
  p99: number;
  deferred: number;
  late: number;
  /** Share of the run during which some runnable task on this machine waited for a CPU (Linux PSI). */
  cpuPressure: number | null;
}

/** Total microseconds some task waited for a CPU (/proc/pressure/cpu), or null where PSI is missing. */
function cpuStall(): number | null {
  try {
    return Number(/^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1] ?? Number.NaN);
  } catch {
    return null;
  }
}

/**
 * Replays requests [0, count) of every stream, one connection each, after a short unmeasured warm-up (JIT,
 * postfwd children). Without `rate`, as fast as answers come (throughput; latency is then mostly
 * queueing: 50 requests always in flight). With `rate` (decisions/s over all connections), each
 * connection sends on a fixed schedule (open loop; at 2,000/s over 50 connections one request every
 * 25 ms, far longer than an answer takes). Latency counts from writing the request (bench/lib/policy-load.ts).
 */
async function measure(
  name: string,
  port: number,
  load: LoadProcess,
  count: number,
  rate?: number,
): Promise<Result> {
  await load.replay({ port, from: 0, to: Math.min(50, count) });
  const stall0 = cpuStall();
  const r = await load.replay({ port, from: 0, to: count, rate });
  const stall1 = cpuStall();
  const sorted = r.latencies.slice().sort();
  return {
    name,
    decisions: r.decisions,
    seconds: r.seconds,
    p50: sorted[Math.floor(r.decisions * 0.5)]!,
    p99: sorted[Math.floor(r.decisions * 0.99)]!,
    deferred: r.deferred,
    late: r.late,
    cpuPressure: stall0 === null || stall1 === null ? null : (stall1 - stall0) / 1e6 / r.seconds,
  };
}

function waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve();
      });
      s.on('error', () => {
        if (Date.now() > deadline) reject(new Error(`nothing listening on ${port}`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

function print(r: Result): void {
  const rate = r.decisions / r.seconds;
  process.stdout.write(
    `${r.name.padEnd(15)} ${String(r.decisions).padStart(8)} decisions  ${rate.toFixed(0).padStart(7)} decisions/s` +
      `  p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  deferred ${r.deferred}` +
      (r.late > 0 ? `  late sends ${r.late}` : '') +
      (r.cpuPressure === null ? '\n' : `  (cpu pressure ${(r.cpuPressure * 100).toFixed(0)}%)\n`),
  );
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'freight-policy-bench-'));
  const perConn = Math.ceil(TOTAL / CONNECTIONS);
  const pacedCount = Math.min(perConn, Math.ceil((PACED_RATE * 10) / CONNECTIONS));
  const children: ChildProcess[] = [];
  const load = await LoadProcess.start(
    Array.from({ length: CONNECTIONS }, (_, i) => encodeStream(streamFor(i, perConn))),
  );
  try {
    const cli = values.tsx
      ? ['--import', 'tsx', join(ROOT, 'sidecar/cli/main.ts')]
      : [buildSidecar(join(dir, 'build'))];
    // The same rule for both: at most 500 recipients a minute per sender address.
    const fPort = await freePort();
    writeFileSync(
      join(dir, 'freight.conf'),
      [
        `acct-db ${join(dir, 'acct.db')}`,
        `run-dir ${join(dir, 'run')}`,
        `policy-listener 127.0.0.1:${fPort}`,
        '<policy-limit per-sender>',
        '  key sender',
        '  rate 500/m',
        '</policy-limit>',
        '',
      ].join('\n'),
    );
    const freight = spawn(process.execPath, [...cli, 'policy', '--config', join(dir, 'freight.conf')], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, FREIGHT_LOG_LEVEL: 'warning' },
    });
    children.push(freight);
    await waitForPort(fPort, 60_000);
    // Paced first: steady-state latency, not the tail of the saturated run's write-behind backlog.
    const pacedResults = [await measure('freight policy', fPort, load, pacedCount, PACED_RATE)];
    const results = [await measure('freight policy', fPort, load, perConn)];
    await stop(freight);

    if (!values['skip-postfwd']) {
      requirePeer(POSTFWD, 'postfwd');
      const pPort = await freePort();
      const rules = join(dir, 'postfwd.cf');
      writeFileSync(
        rules,
        'id=RATE01; protocol_state==RCPT; action=rate(sender/500/60/450 4.7.1 sender over 500/m)\n',
      );
      // postfwd2 --nodaemon is a stdin filter without its cache daemon (no rate()), so it runs the way it
      // runs in production: daemonized, with its pid file in our temp dir to stop it afterwards.
      const pidFile = join(dir, 'postfwd.pid');
      const postfwd = spawn(
        POSTFWD,
        [
          ...['-f', rules, '-u', 'root', '-g', 'root', '--perfmon', '--cache', '0'],
          ...[
            '--server_socket',
            `tcp:127.0.0.1:${pPort}`,
            '--cache_socket',
            `unix::${join(dir, 'postfwd-cache.sock')}`,
          ],
          ...[
            '--pidfile',
            pidFile,
            '--min_servers',
            String(CONNECTIONS + 5),
            '--max_servers',
            String(CONNECTIONS + 10),
          ],
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      await new Promise((r) => postfwd.once('exit', r));
      try {
        await waitForPort(pPort, 120_000); // 55 Perl children take a while to fork
        pacedResults.push(await measure('postfwd2', pPort, load, pacedCount, PACED_RATE));
        results.push(await measure('postfwd2', pPort, load, perConn));
      } catch (err) {
        throw new Error(`postfwd2 did not serve on 127.0.0.1:${pPort}: ${(err as Error).message}`);
      } finally {
        if (existsSync(pidFile)) {
          // The master's process group holds its server children and cache daemon.
          const pid = Number(readFileSync(pidFile, 'utf8').trim());
          if (pid > 0)
            for (const target of [-pid, pid])
              try {
                process.kill(target, 'SIGTERM');
              } catch {}
        }
      }
    }

    process.stdout.write(
      `\n${CONNECTIONS} connections, ${perConn} requests each (RCPT, Postfix 3.7 attributes);` +
        ` freight policy ${values.tsx ? 'from source under tsx' : 'compiled'}\n`,
    );
    for (const r of results) print(r);
    process.stdout.write(
      `\nPaced at ${PACED_RATE} decisions/s for 10 s (fixed send schedule per connection)\n`,
    );
    for (const r of pacedResults) print(r);
    const [f, p] = results;
    if (f && p) {
      process.stdout.write(
        `\nfreight/postfwd throughput: ${(f.decisions / f.seconds / (p.decisions / p.seconds)).toFixed(1)}×` +
          `  (goal ≥ 5×); freight p99 at ${PACED_RATE}/s: ${pacedResults[0]!.p99.toFixed(3)} ms (goal < 2 ms)\n`,
      );
    }
  } finally {
    load.close();
    for (const c of children) await stop(c);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
