import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AcctStore } from '../sidecar/acct/store.js';
import { packageRoot } from '../sidecar/common/paths.js';
import { SuppressionList } from '../sidecar/suppress/list.js';

const dir = mkdtempSync(join(tmpdir(), 'freight-supp-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(db: string, ...args: string[]) {
  const script = `import { commands } from ${JSON.stringify(join(packageRoot, 'sidecar/suppress/cli.ts'))}; process.exitCode = await commands.find((c) => c.name === ${JSON.stringify(`suppress ${args[0]}`)}).run(${JSON.stringify([...args.slice(1), '--db', db])});`;
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    cwd: packageRoot,
  });
}

test('entries added by another process appear after refresh(); removals too', () => {
  const db = join(dir, 's.db');
  const store = AcctStore.open(db);
  const list = SuppressionList.open(store);
  assert.equal(list.check('Bob@Example.com'), undefined);
  const add = cli(db, 'add', 'bob@example.com', '--reason', 'asked to stop');
  assert.equal(add.status, 0, add.stderr);
  assert.equal(cli(db, 'add', 'spamtrap.example').status, 0);
  assert.equal(list.check('bob@example.com'), undefined, 'in-memory copy unchanged until refresh');
  list.refresh();
  assert.equal(list.check('BOB@example.com')?.reason, 'asked to stop');
  assert.equal(list.check('anyone@mx.spamtrap.example')?.kind, 'domain');
  const check = cli(db, 'check', 'bob@example.com', '--json');
  assert.equal(check.status, 0);
  assert.equal(JSON.parse(check.stdout).source, 'manual');
  assert.equal(cli(db, 'remove', 'bob@example.com').status, 0);
  list.refresh();
  assert.equal(list.check('bob@example.com'), undefined);
  assert.equal(cli(db, 'check', 'bob@example.com').status, 1);
  store.close();
});

test('bounce entries with expiry stop suppressing when expired; list shows source', () => {
  const store = AcctStore.open(join(dir, 'e.db'));
  const list = SuppressionList.open(store);
  const now = Date.now();
  list.add({
    address: 'gone@example.org',
    reason: '550 5.1.1 user unknown',
    source: 'bounce',
    expiresAt: now + 1000,
  });
  assert.ok(list.check('gone@example.org', now));
  assert.equal(list.check('gone@example.org', now + 2000), undefined);
  assert.deepEqual(
    list.list({ source: 'bounce' }).map((e) => e.key),
    ['gone@example.org'],
  );
  assert.throws(
    () => list.add({ address: 'not an address', reason: 'x', source: 'manual' }),
    /not an address/,
  );
  const again = SuppressionList.open(AcctStore.open(join(dir, 'e.db')));
  assert.equal(again.size, 1);
  store.close();
});
