/**
 * Exactly-once across crashes and rotation: a real Postfix logs steady traffic while the tailer is
 * SIGKILLed again and again and the maillog is rotated in each style (rename + new file, copytruncate,
 * `postfix logrotate`), with the tailer alive or dead at the moment of rotation. At the end the rows in
 * SQLite must be exactly the rows the log files hold: none lost, none twice. The dedupe index is dropped
 * first, so a line read twice would show up as a duplicate row instead of being silently ignored.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  truncateSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { addr, testSubnet } from '../harness/ports.js';
import { startTestPostfix, type TestPostfix } from '../harness/postfix.js';
import { type Sink, startSink } from '../harness/sink.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { postfixCommand } from '../sidecar/postfix/instance.js';
import { Ingest } from '../sidecar/tailer/ingest.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../sidecar/tailer/cli.ts', import.meta.url));

let pf: TestPostfix;
let sink: Sink;
let tailer: ChildProcess | null = null;
let load: ChildProcess | null = null;
const tailerLog: string[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Start a tailer process; resolves once it follows the log (or after 15 s). */
async function startTailerReady(): Promise<ChildProcess> {
  const before = tailerLog.join('').split('following maillog').length;
  const child = startTailer();
  for (let i = 0; i < 150 && tailerLog.join('').split('following maillog').length === before; i++)
    await sleep(100);
  return child;
}

function startTailer(): ChildProcess {
  const script = `const { commands } = await import(${JSON.stringify(CLI)});
process.exitCode = await commands.find((c) => c.name === 'tailer').run(['--config', ${JSON.stringify(pf.configPath)}]);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d) => tailerLog.push(String(d)));
  return child;
}

async function kill(child: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** Pids of this instance's postlogd (the process writing maillog_file), found by its MAIL_CONFIG. */
function postlogdPids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, 'utf8').trim() !== 'postlogd') continue;
      const env = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (env.includes(`MAIL_CONFIG=${pf.layout.configDir}`)) pids.push(Number(name));
    } catch {
      // Process gone while we looked.
    }
  }
  return pids;
}

let rotation = 0;
async function rotate(style: 'rename' | 'copytruncate' | 'logrotate'): Promise<void> {
  rotation++;
  const log = pf.maillog;
  if (style === 'rename') {
    renameSync(log, `${log}.r${rotation}`);
    await postfixCommand(pf.config.global.postfixCommandDir, pf.layout, ['reload']);
  } else if (style === 'copytruncate') {
    // Right after a rename the live file exists only once Postfix logs again (logrotate's `missingok`).
    for (let i = 0; i < 100 && !existsSync(log); i++) await sleep(100);
    if (!existsSync(log)) return;
    // Freeze the writer for the copy: otherwise lines written between copy and truncate exist in no file
    // (copytruncate's own loss window), and the ground truth below could not be read back from the files.
    const pids = postlogdPids();
    for (const p of pids) process.kill(p, 'SIGSTOP');
    try {
      copyFileSync(log, `${log}.c${rotation}`);
      truncateSync(log, 0);
    } finally {
      for (const p of pids) process.kill(p, 'SIGCONT');
    }
  } else {
    await postfixCommand(pf.config.global.postfixCommandDir, pf.layout, ['logrotate']);
    // Rotated names carry a timestamp to the second; keep two rotations from colliding.
    await sleep(1100);
  }
}

/** Every row the log files hold, read oldest file first. */
function groundTruth(): { keys: string[]; fileOf: Map<string, string> } {
  const dir = pf.layout.logDir;
  const files = readdirSync(dir)
    .map((f) => join(dir, f))
    .filter((f) => f !== pf.maillog)
    .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  // After a rotation the new file appears only once Postfix logs again.
  if (existsSync(pf.maillog)) files.push(pf.maillog);
  const ing = new Ingest({ timeZone: null, classifier: null, engine: pf.config.global.smtpListener });
  const fileOf = new Map<string, string>();
  for (const f of files) {
    const buf = readFileSync(f);
    ing.text((f.endsWith('.gz') ? gunzipSync(buf) : buf).toString('utf8'));
    for (const r of ing.out) if (!fileOf.has(r.dedupeKey!)) fileOf.set(r.dedupeKey!, f);
  }
  assert.equal(ing.stats.kinds.unknown ?? 0, 0, `unreadable lines: ${ing.stats.unknownSamples.join('\n')}`);
  return { keys: ing.take().rows.map((r) => r.dedupeKey!), fileOf };
}

before(async () => {
  sink = await startSink({ host: addr(testSubnet(), 1), port: 0 });
  pf = await startTestPostfix({
    keep: !!process.env.TAILER_DEBUG,
    transports: [`ok.test smtp:[${sink.host}]:${sink.port}`],
  });
  const store = AcctStore.open(pf.config.global.acctDb);
  store.db.exec('DROP INDEX acct_dedupe');
  store.close();
});

after(async () => {
  await kill(load, 'SIGKILL');
  await kill(tailer, 'SIGKILL');
  await pf?.stop();
  await sink?.close();
});

it('loses and duplicates nothing across SIGKILLs and every rotation style', {
  timeout: 600_000,
}, async () => {
  load = spawn(
    '/usr/sbin/smtp-source',
    // Far more messages than the rounds take: traffic (and so logging) must last through every
    // rotation, or a renamed log is never recreated and the next rotation finds no file to rotate.
    ['-s', '4', '-m', '1000000', '-f', 'app@src.test', '-t', 'rcpt@ok.test', `${pf.host}:${pf.port}`],
    {
      stdio: 'ignore',
    },
  );
  const loadDone = new Promise((r) => load!.once('exit', r));
  const styles = ['rename', 'copytruncate', 'logrotate'] as const;
  for (let round = 0; round < 9; round++) {
    tailer = await startTailerReady();
    await sleep(300 + ((round * 397) % 900));
    const style = styles[round % 3]!;
    if (round % 2 === 0) {
      // Rotate under a running tailer, then crash it shortly after.
      await rotate(style);
      await sleep((round * 131) % 400);
      await kill(tailer, 'SIGKILL');
    } else {
      // Crash first; the rotation happens while no tailer runs.
      await kill(tailer, 'SIGKILL');
      await rotate(style);
    }
  }
  load.kill('SIGTERM');
  await loadDone;
  // Let Postfix finish delivering what it accepted.
  for (let i = 0; i < 100 && (await pf.queueIds()).length > 0; i++) await sleep(200);

  tailer = startTailer();
  const { keys: truth, fileOf } = groundTruth();
  const store = AcctStore.open(pf.config.global.acctDb, { readonly: true });
  let keys: string[] = [];
  for (let i = 0; i < 150; i++) {
    keys = (
      store.db.prepare("SELECT dedupeKey FROM acct WHERE path = 'postfix'").all() as { dedupeKey: string }[]
    ).map((r) => r.dedupeKey);
    if (keys.length >= truth.length) break;
    await sleep(200);
  }
  await sleep(500);
  keys = (
    store.db.prepare("SELECT dedupeKey FROM acct WHERE path = 'postfix'").all() as { dedupeKey: string }[]
  ).map((r) => r.dedupeKey);
  store.close();
  await kill(tailer, 'SIGTERM');

  assert.ok(truth.length >= 1000, `expected steady traffic, got ${truth.length} rows`);
  const have = new Set(keys);
  const lost = truth.filter((k) => !have.has(k));
  const duplicated = keys.length - have.size;
  const truthSet = new Set(truth);
  const extra = keys.filter((k) => !truthSet.has(k));
  const lostFiles = new Map<string, number>();
  for (const k of lost) lostFiles.set(fileOf.get(k)!, (lostFiles.get(fileOf.get(k)!) ?? 0) + 1);
  assert.deepEqual(
    { lost: lost.length, duplicated, extra: extra.length },
    { lost: 0, duplicated: 0, extra: 0 },
    `lost per file: ${JSON.stringify([...lostFiles])}\ntailer log:\n${tailerLog.join('')}`,
  );
  assert.equal(keys.length, truth.length);
});
