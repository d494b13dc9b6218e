/**
 * A tailer's surroundings without Postfix: a freight.conf, an accounting database and a maillog file the
 * test appends Postfix delivery lines to (RFC 3339 stamps, as `maillog_file` writes them).
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../harness/ports.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { loadConfig } from '../sidecar/config/load.js';
import type { FreightConfig } from '../sidecar/config/model.js';

export interface TailerWorld {
  dir: string;
  confPath: string;
  config: FreightConfig;
  maillog: string;
  acctDb: string;
  /** Append one `status=sent` delivery line per recipient. */
  deliver(rcpts: string[]): void;
  /** Open the accounting database (read-write, so triggers and locks can be set up). */
  open(): AcctStore;
  close(): void;
}

let queueSeq = 0;

export async function tailerWorld(extra: string[] = []): Promise<TailerWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'freight-tailer-'));
  const maillog = join(dir, 'maillog');
  const acctDb = join(dir, 'acct.db');
  writeFileSync(maillog, '');
  const confPath = join(dir, 'freight.conf');
  writeFileSync(
    confPath,
    [
      'host-name tailer.test',
      `spool-dir ${dir}/spool`,
      `run-dir ${dir}/run`,
      `acct-db ${acctDb}`,
      `maillog ${maillog}`,
      'maillog-timezone UTC',
      `smtp-listener 127.0.0.1:${await freePort()}`,
      `http-mgmt-listener 127.0.0.1:${await freePort()}`,
      ...extra,
      '',
    ].join('\n'),
  );
  // Migrated before the tailer starts, so a test can add triggers to `acct` first.
  AcctStore.open(acctDb).close();
  return {
    dir,
    confPath,
    config: loadConfig(confPath),
    maillog,
    acctDb,
    deliver(rcpts) {
      const lines = rcpts.map((rcpt) => {
        const qid = `4C${(++queueSeq).toString(16).toUpperCase().padStart(9, '0')}`;
        return (
          `${new Date().toISOString()} mx postfix/smtp[4242]: ${qid}: to=<${rcpt}>, ` +
          'relay=mx.example.com[192.0.2.1]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, ' +
          'status=sent (250 2.0.0 Ok)\n'
        );
      });
      appendFileSync(maillog, lines.join(''));
    },
    open: () => AcctStore.open(acctDb),
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}
