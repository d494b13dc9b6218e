/**
 * Freight is installed on machines that already run a production Postfix. This test starts a stand-in
 * for that host instance — laid out as a packaged Postfix is (etc/postfix, var/spool/postfix,
 * var/lib/postfix under a temporary root), relaying to a sink — and makes it the instance Postfix's
 * own commands find by default (MAIL_CONFIG). Then it runs what an operator runs: the set-up script,
 * and mail through a private Postfix instance into the engine. The host instance must still be
 * running afterwards with the same master pid and the same `postconf -n`, and still deliver.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import {
  addr,
  freePort,
  type Sink,
  startDnsServer,
  startSink,
  type TestDns,
  testSubnet,
} from '../harness/index.js';
import { startTestPostfix, type TestPostfix } from '../harness/postfix.js';
import { submit } from '../harness/smtp-client.js';
import { packageRoot } from '../sidecar/common/paths.js';
import { EngineDaemon } from '../sidecar/engine/daemon.js';
import { masterPid, startPostfix, stopPostfix } from '../sidecar/postfix/instance.js';
import type { PostfixLayout } from '../sidecar/postfix/layout.js';

const run = promisify(execFile);
const subnet = testSubnet();
const ip = (n: number) => addr(subnet, n);

let root: string;
let host: PostfixLayout;
let hostPort: number;
let hostSink: Sink;
let engineSink: Sink;
let dns: TestDns;
let privatePostfix: TestPostfix | undefined;
let engine: EngineDaemon | undefined;

/** The services of a packaged master.cf, unchrooted (the stand-in's queue is not a chroot jail). */
function hostMasterCf(listener: string): string {
  const services = [
    `${listener} inet n - n - - smtpd`,
    'pickup unix n - n 60 1 pickup',
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'smtp unix - - n - - smtp',
    'relay unix - - n - - smtp',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'local unix - n n - - local',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
  ];
  return `${services.join('\n')}\n`;
}

async function startHostPostfix(): Promise<void> {
  root = mkdtempSync(join(tmpdir(), 'freight-hostpf-'));
  // mkdtemp makes it 0700; the postfix user must be able to reach its data_directory below it.
  chmodSync(root, 0o755);
  host = {
    root,
    configDir: join(root, 'etc', 'postfix'),
    queueDir: join(root, 'var', 'spool', 'postfix'),
    dataDir: join(root, 'var', 'lib', 'postfix'),
    logDir: join(root, 'var', 'log'),
    maillog: join(root, 'var', 'log', 'mail.log'),
  };
  for (const d of [host.configDir, host.queueDir, host.dataDir, host.logDir])
    mkdirSync(d, { recursive: true });
  // As the package leaves it: the master's lock and the tls caches live in a postfix-owned data_directory.
  const postfixUid = Number((await run('id', ['-u', 'postfix'])).stdout.trim());
  chownSync(host.dataDir, postfixUid, 0);
  // Postfix only binds inet_interfaces that are configured on an interface: on lo that is 127.0.0.1.
  hostPort = await freePort('127.0.0.1');
  const main = {
    compatibility_level: '3.6',
    config_directory: host.configDir,
    queue_directory: host.queueDir,
    data_directory: host.dataDir,
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: 'mail.host.test',
    mydestination: '',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    relayhost: `[${ip(26)}]:${hostSink.port}`,
    smtp_dns_support_level: 'disabled',
    maillog_file: host.maillog,
    maillog_file_prefixes: root,
    queue_run_delay: '1s',
    minimal_backoff_time: '1s',
    maximal_backoff_time: '2s',
  };
  writeFileSync(
    join(host.configDir, 'main.cf'),
    Object.entries(main)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n') + '\n',
  );
  writeFileSync(join(host.configDir, 'master.cf'), hostMasterCf(`127.0.0.1:${hostPort}`));
  await startPostfix('/usr/sbin', host);
}

async function hostPostconf(): Promise<string> {
  return (await run('/usr/sbin/postconf', ['-c', host.configDir, '-n'])).stdout;
}

/** One message through the host instance, to its own sink. */
async function hostDelivers(tag: string): Promise<void> {
  const before = hostSink.arrivals.length;
  await submit({ host: '127.0.0.1', port: hostPort, from: 'billing@host.test', to: `${tag}@customer.test` });
  await hostSink.waitForArrivals(before + 1, 30_000);
}

before(async () => {
  dns = await startDnsServer({ host: ip(53) });
  hostSink = await startSink({ host: ip(26), port: await freePort(ip(26)) });
  const port = await freePort(ip(21));
  engineSink = await startSink({ host: ip(21), port });
  dns.mx('isp-a.test', [{ exchange: 'mx.isp-a.test', priority: 10 }]);
  dns.a('mx.isp-a.test', [ip(21)]);
  await startHostPostfix();
});

after(async () => {
  await engine?.stop();
  await privatePostfix?.stop();
  if (host) await stopPostfix('/usr/sbin', host);
  await hostSink?.close();
  await engineSink?.close();
  await dns?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

test('set-up and a Postfix-fronted run leave the host Postfix running, unchanged and delivering', async () => {
  const pidBefore = masterPid(host);
  assert.ok(pidBefore, 'the host instance runs before the suite does');
  const confBefore = await hostPostconf();
  await hostDelivers('before');

  // What `npm test` and `npm run up` run first; MAIL_CONFIG makes the stand-in the default instance.
  const setup = await run('bash', [join(packageRoot, 'scripts', 'install-postfix.sh')], {
    env: { ...process.env, MAIL_CONFIG: host.configDir },
  });
  assert.match(setup.stdout, /host Postfix: running \(left as it is\)/);

  privatePostfix = await startTestPostfix({
    globals: { 'dns-server': dns.address, 'remote-smtp-port': String(engineSink.port) },
    freightConf: `
<virtual-mta mta1>
  smtp-source-host ${ip(10)} mta1.freight.test
</virtual-mta>
<domain isp-a.test>
  route-via engine
  virtual-mta mta1
</domain>
`,
  });
  engine = await EngineDaemon.start(privatePostfix.configPath);
  for (let i = 0; i < 3; i++) {
    await submit({
      host: privatePostfix.host,
      port: privatePostfix.port,
      from: 'app@apps.test',
      to: `u${i}@isp-a.test`,
    });
  }
  await engineSink.waitForArrivals(3, 60_000);
  await engine.stop();
  engine = undefined;
  await privatePostfix.stop();
  privatePostfix = undefined;

  assert.equal(masterPid(host), pidBefore, 'same master pid: never stopped, restarted or replaced');
  assert.equal(await hostPostconf(), confBefore, 'same postconf -n: never reconfigured');
  assert.doesNotMatch(
    readFileSync(host.maillog, 'utf8'),
    /reload|terminating on signal/,
    'never reloaded or stopped',
  );
  await hostDelivers('after');
});
