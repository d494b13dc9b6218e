/**
 * One condition, one code: a daemon that does not answer gives its `<DAEMON>_UNAVAILABLE` code whether it
 * is not running, silent or failing the request, to the CLI and the API alike; every code is declared
 * once, in use, and the API's table in docs/api.md is the registry's.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { API_DOC, apiErrorTable, documentedTable } from '../scripts/error-codes.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { declarationOf, ERROR_CODES } from '../sidecar/common/error-codes.js';
import { FreightError } from '../sidecar/common/errors.js';
import { createLogger } from '../sidecar/common/log.js';
import { controlRequest, controlSocketPath } from '../sidecar/engine/control/client.js';
import { ControlServer } from '../sidecar/engine/control/server.js';
import { fetchStats, statsSocketPath } from '../sidecar/policy/stats.js';

/** A unix socket server that reads requests and answers each connection with `answer` (or never). */
async function fakeDaemon(path: string, answer: string | null): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    // Reading (and dropping) the request is what lets the server see the client hang up.
    socket.resume();
    if (answer !== null) socket.end(answer);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

const closed = (server: net.Server) => new Promise<void>((resolve) => server.close(() => resolve()));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FreightError, `a FreightError, not ${String(err)}`);
    return err.code;
  }
  assert.fail('expected the request to fail');
}

test('an engine that is not running, silent or failing the request is ENGINE_UNAVAILABLE', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'freight-codes-engine-'));
  try {
    assert.equal(await codeOf(controlRequest(dir, { op: 'status' })), 'ENGINE_UNAVAILABLE');

    const silent = await fakeDaemon(controlSocketPath(dir), null);
    assert.equal(await codeOf(controlRequest(dir, { op: 'status' }, 200)), 'ENGINE_UNAVAILABLE');
    await closed(silent);

    const failing = new ControlServer(
      dir,
      () => Promise.reject(new Error('handler bug')),
      createLogger('test/engine-control'),
    );
    await failing.listen();
    try {
      assert.equal(await codeOf(controlRequest(dir, { op: 'status' })), 'ENGINE_UNAVAILABLE');
    } finally {
      await failing.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a policy daemon that is not running, silent or unreadable is POLICY_UNAVAILABLE', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'freight-codes-policy-'));
  try {
    assert.equal(await codeOf(fetchStats(dir)), 'POLICY_UNAVAILABLE');

    const silent = await fakeDaemon(statsSocketPath(dir), null);
    assert.equal(await codeOf(fetchStats(dir, 200)), 'POLICY_UNAVAILABLE');
    await closed(silent);

    const garbled = await fakeDaemon(statsSocketPath(dir), 'not json');
    assert.equal(await codeOf(fetchStats(dir)), 'POLICY_UNAVAILABLE');
    await closed(garbled);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an accounting database that is missing or cannot be opened is ACCT_UNAVAILABLE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'freight-codes-acct-'));
  try {
    const codeOfOpen = (path: string, readonly: boolean) =>
      assert.throws(
        () => AcctStore.open(path, { readonly }),
        (err) => err instanceof FreightError && err.code === 'ACCT_UNAVAILABLE',
      );
    codeOfOpen(join(dir, 'missing.db'), true);
    const notAFile = join(dir, 'a-directory.db');
    mkdirSync(notAFile);
    codeOfOpen(notAFile, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

test('every code is declared once and thrown or answered somewhere; an undeclared one is not a code', () => {
  const declared = Object.values(ERROR_CODES).flatMap((codes) => Object.keys(codes));
  assert.equal(new Set(declared).size, declared.length, 'a code declared under two components');

  const root = join(import.meta.dirname, '..');
  const registry = join(root, 'sidecar', 'common', 'error-codes.ts');
  const code = sources(join(root, 'sidecar'))
    .filter((f) => f !== registry)
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const unused = declared.filter((c) => !code.includes(`'${c}'`));
  assert.deepEqual(unused, [], 'declared codes that nothing in sidecar/ uses');

  // @ts-expect-error an undeclared code does not typecheck: this is the code the engine client threw before
  const undeclared = new FreightError('ENGINE_NOT_RUNNING', 'the engine is not running');
  assert.equal(declarationOf(undeclared.code), undefined);
});

test("docs/api.md's error table is the registry's API codes with their statuses", () => {
  assert.equal(documentedTable(readFileSync(API_DOC, 'utf8')), apiErrorTable());
});
