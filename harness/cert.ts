/**
 * Self-signed certificate for test-world TLS (sink STARTTLS). Node cannot create X.509 certificates
 * itself, so openssl makes one once and it is cached in the OS temp directory for every later run.
 * Key and certificate sit in one file written by an atomic rename, so test files racing to create it
 * never read a key that belongs to another certificate.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { WorldError } from './errors.js';

const run = promisify(execFile);

export interface TestCertificate {
  key: string;
  cert: string;
}

const CACHE_FILE = path.join(os.tmpdir(), 'freight-test-world-tls-v1.pem');
let cached: Promise<TestCertificate> | undefined;

function parse(pem: string): TestCertificate | undefined {
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(pem)?.[0];
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(pem)?.[0];
  return key && cert ? { key, cert } : undefined;
}

async function load(): Promise<TestCertificate> {
  const existing = await readFile(CACHE_FILE, 'utf8').catch(() => '');
  const parsed = parse(existing);
  if (parsed) return parsed;

  const dir = await mkdtemp(path.join(os.tmpdir(), 'freight-cert-'));
  try {
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '3650',
      '-subj',
      '/CN=sink.freight.test',
      '-addext',
      'subjectAltName=DNS:sink.freight.test,DNS:localhost,IP:127.0.0.1',
    ]);
    const pem = (await readFile(keyFile, 'utf8')) + (await readFile(certFile, 'utf8'));
    const result = parse(pem);
    if (!result) throw new WorldError('WORLD_CERT', 'openssl produced no usable key/certificate');
    const combined = path.join(dir, 'combined.pem');
    await writeFile(combined, pem, { mode: 0o600 });
    await rename(combined, CACHE_FILE);
    return result;
  } catch (err) {
    if (err instanceof WorldError) throw err;
    throw new WorldError('WORLD_CERT', 'cannot create the test TLS certificate with openssl', undefined, {
      cause: err,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The test world's self-signed key and certificate (CN sink.freight.test, SAN 127.0.0.1). */
export function testCertificate(): Promise<TestCertificate> {
  cached ??= load().catch((err) => {
    cached = undefined;
    throw err;
  });
  return cached;
}
