/**
 * The engine's pipelining connection (sidecar/engine/deliver/smtp-pipelining.ts) overrides and calls
 * private parts of nodemailer's SMTPConnection that no semver promise covers. nodemailer is pinned to
 * one exact version; this test fails loudly when the installed version differs from the pin or when
 * those private methods and fields change shape, before any delivery test can fail obscurely.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';

const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  dependencies: Record<string, string>;
};

/** The private surface the pipelining connection relies on, as the pinned nodemailer has it. */
interface Private {
  _supportedExtensions: unknown;
  _responseActions: Array<(str: string) => void>;
  _responseQueue: string[];
  _destroyed: unknown;
  _envelope: Record<string, unknown>;
  _sendCommand(str: string): void;
  _processResponse(): void;
  _setEnvelope(envelope: unknown, callback: (err: Error | null) => void): void;
  _formatError(message: string, type: string, response: string | false, command: string): Error;
  _getDsnRcptToArgs(): string;
}

const connection = (): Private => new SMTPConnection({}) as unknown as Private;

test('package.json pins nodemailer to one exact version, and that version is installed', () => {
  const pinned = pkg.dependencies.nodemailer;
  assert.match(pinned ?? '', /^\d+\.\d+\.\d+$/, 'nodemailer must be pinned exactly (no ^ or ~)');
  const installed = (require('nodemailer/package.json') as { version: string }).version;
  assert.equal(installed, pinned);
});

test('the private methods the pipelining connection overrides or calls exist with their arity', () => {
  const proto = SMTPConnection.prototype as unknown as Record<string, unknown>;
  const arity: Record<string, number> = {
    _setEnvelope: 2,
    _onClose: 0,
    _processResponse: 0,
    _sendCommand: 2,
    _getDsnRcptToArgs: 0,
    _formatError: 4,
  };
  for (const [name, length] of Object.entries(arity)) {
    const fn = proto[name];
    assert.equal(typeof fn, 'function', `SMTPConnection.prototype.${name} is gone`);
    assert.equal((fn as (...a: unknown[]) => unknown).length, length, `${name} changed its arity`);
  }
});

test('a new connection has the private state fields the pipelining connection reads', () => {
  const c = connection();
  assert.ok(Array.isArray(c._supportedExtensions), '_supportedExtensions is an array');
  assert.ok(Array.isArray(c._responseActions), '_responseActions is an array');
  assert.ok(Array.isArray(c._responseQueue), '_responseQueue is an array');
  assert.equal(c._destroyed, false);
});

test('_setEnvelope queues exactly one reply handler (MAIL) and fills the envelope queues', () => {
  const c = connection();
  const sent: string[] = [];
  c._sendCommand = (str) => sent.push(str);
  c._setEnvelope({ from: 'a@example.org', to: ['b@example.net', 'c@example.net'] }, () => {});
  assert.equal(c._responseActions.length, 1, 'one handler, for MAIL FROM');
  assert.deepEqual(sent, ['MAIL FROM:<a@example.org>']);
  assert.deepEqual(c._envelope.rcptQueue, ['b@example.net', 'c@example.net']);
  assert.deepEqual(c._envelope.to, ['b@example.net', 'c@example.net']);
  for (const field of ['accepted', 'rejected', 'rejectedErrors'])
    assert.deepEqual(c._envelope[field], [], `_envelope.${field} starts empty`);
  assert.equal(c._getDsnRcptToArgs(), '', 'no DSN arguments without a DSN envelope');
});

test('an invalid envelope queues no handler, so the pipelining connection sends nothing more', () => {
  const c = connection();
  let error: Error | null = null;
  c._setEnvelope({ from: 'a@example.org', to: [] }, (err) => {
    error = err;
  });
  assert.equal(c._responseActions.length, 0);
  assert.equal((error as (Error & { code?: string }) | null)?.code, 'EENVELOPE');
});

test('_processResponse hands the oldest queued reply line to the oldest handler', () => {
  const c = connection();
  const got: string[] = [];
  c._responseActions.push((str) => got.push(str));
  c._responseQueue.push('250 2.1.0 Ok');
  c._processResponse();
  assert.deepEqual(got, ['250 2.1.0 Ok']);
  assert.equal(c._responseQueue.length, 0);
});

test('_formatError builds an error carrying the code, reply and command', () => {
  const err = connection()._formatError(
    'Recipient command failed',
    'EENVELOPE',
    '550 5.1.1 no',
    'RCPT TO',
  ) as Error & {
    code?: string;
    response?: string;
    command?: string;
  };
  assert.equal(err.code, 'EENVELOPE');
  assert.equal(err.response, '550 5.1.1 no');
  assert.equal(err.command, 'RCPT TO');
});
