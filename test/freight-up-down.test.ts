/**
 * `freight up` runs the private Postfix and every daemon and prints their listeners; a second `up` says
 * the stack is running; `freight down` leaves no process behind.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { runFreight, startFreight } from '../harness/freight.js';
import { addr, freePort, startSink, testSubnet } from '../harness/index.js';
import { writeFreightConf } from '../harness/postfix.js';
import { descendants, survivors } from '../harness/procs.js';
import { pidFilePath, readLivePid } from '../sidecar/common/daemon.js';
import { loadConfig } from '../sidecar/config/load.js';
import { masterPid } from '../sidecar/postfix/instance.js';
import { postfixLayout } from '../sidecar/postfix/layout.js';

const exec = promisify(execFile);

test('freight up starts the stack, refuses a second up, and freight down stops every process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'freight-up-'));
  chmodSync(dir, 0o755);
  const sinkHost = addr(testSubnet(), 9);
  const sink = await startSink({ host: sinkHost, port: await freePort(sinkHost) });
  // The Postfix path of up.test goes to the sink: a <domain> block with a fixed next hop.
  const configPath = await writeFreightConf(dir, {
    freightConf: `<domain up.test>\n  route [${sinkHost}]:${sink.port}\n</domain>`,
  });
  const config = loadConfig(configPath);
  const up = startFreight(['up', '--config', configPath]);
  try {
    await up.waitFor(/Ctrl-C or `freight down`/, 60_000);
    const out = up.output();
    const g = config.global;
    assert.match(out, new RegExp(`postfix\\s+smtpd ${g.postfixListener.host}:${g.postfixListener.port}`));
    for (const line of out.split('\n').filter((l) => /^\s{2}\w+\s/.test(l))) {
      assert.doesNotMatch(line, /undefined/);
    }
    const master = masterPid(postfixLayout(g.postfixDir));
    assert.ok(master, 'Postfix master is running');

    // An independent client (swaks) sends through that Postfix, which routes it to the sink.
    const swaks = await exec('swaks', [
      '--server',
      `${g.postfixListener.host}:${g.postfixListener.port}`,
      '--from',
      'app@apps.test',
      '--to',
      'someone@up.test',
      '--header',
      'Subject: routed by freight up',
    ]);
    assert.match(swaks.stdout, /<-\s+250 2\.0\.0 Ok: queued as/);
    const [arrival] = await sink.waitForArrivals(1, 30_000);
    assert.deepEqual(arrival?.rcptTo, ['someone@up.test']);
    assert.equal(arrival?.headers.subject?.[0], 'routed by freight up');

    const second = await runFreight(['up', '--config', configPath]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /already running \(freight up, pid \d+\).*freight down/);

    const family = [up.pid, ...descendants(up.pid), master, ...descendants(master)];
    const down = await runFreight(['down', '--config', configPath]);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /stopped freight up/);
    assert.equal(await up.exited, 0);
    assert.deepEqual(await survivors(family), [], 'nothing of the stack is left running');
    assert.equal(readLivePid(pidFilePath(g.runDir, 'up')), null);
    const again = await runFreight(['down', '--config', configPath]);
    assert.match(again.stdout, /nothing was running/);
  } finally {
    await up.stop();
    await runFreight(['down', '--config', configPath]);
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('freight show, reload and down find the stack freight up runs without being given --config', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'freight-up-'));
  chmodSync(dir, 0o755);
  // Its own record folder: a stack another test file runs at the same time is not this test's.
  const env = { FREIGHT_STACK_DIR: join(dir, 'stacks') };
  const configPath = await writeFreightConf(dir, {});
  const up = startFreight(['up', '--config', configPath], { env });
  try {
    await up.waitFor(/Ctrl-C or `freight down`/, 60_000);
    const status = await runFreight(['show', 'status'], { env });
    assert.equal(status.code, 0, status.stderr);
    const reload = await runFreight(['reload'], { env });
    assert.equal(reload.code, 0, reload.stderr);
    const down = await runFreight(['down'], { env });
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /stopped freight up/);
    assert.equal(await up.exited, 0);
    const none = await runFreight(['down'], { env });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no config file: .*no running freight up/);
  } finally {
    await up.stop();
    await runFreight(['down', '--config', configPath]);
    rmSync(dir, { recursive: true, force: true });
  }
});
