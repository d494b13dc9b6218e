/**
 * Hot reload on a real daemon (`freight policy`): SIGHUP with a bad config is refused with its file:line
 * errors logged and the old limits keep running; a good config takes effect; the client's connection and
 * the counters survive both reloads.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type FreightDaemon, startFreight } from '../harness/freight.js';
import { freePort } from '../harness/ports.js';
import { PolicyClient } from '../sidecar/policy/client.js';

const dir = mkdtempSync(join(tmpdir(), 'freight-reload-'));
let daemon: FreightDaemon | null = null;
let client: PolicyClient | null = null;
after(async () => {
  client?.close();
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function conf(port: number, limit: string, extra = ''): string {
  return [
    `run-dir ${join(dir, 'run')}`,
    `acct-db ${join(dir, 'acct.db')}`,
    `policy-listener 127.0.0.1:${port}`,
    '<policy-limit per-sender>',
    '  key sender',
    '  count recipients',
    `  rate ${limit}`,
    '</policy-limit>',
    extra,
    '',
  ].join('\n');
}

const request = (n: number) => ({
  request: 'smtpd_access_policy',
  protocol_state: 'RCPT',
  protocol_name: 'ESMTP',
  client_address: '127.0.0.1',
  sender: 'app@apps.test',
  recipient: `r${n}@example.com`,
  recipient_count: 0,
  instance: `i${n}`,
});

test('SIGHUP: a bad config is refused with file:line, a good one applies, connection and counters survive', async () => {
  const port = await freePort();
  const file = join(dir, 'freight.conf');
  writeFileSync(file, conf(port, '3/h'));
  daemon = startFreight(['policy', '--config', file]);
  await daemon.waitFor(/listening/, 20_000);
  client = await PolicyClient.connect({ host: '127.0.0.1', port });
  let n = 0;
  assert.equal(await client.ask(request(++n)), 'DUNNO');
  assert.equal(await client.ask(request(++n)), 'DUNNO');

  writeFileSync(file, conf(port, '100/h', '<domain a.test>\n  max-smtp-outt 1\n</domain>'));
  process.kill(daemon.pid, 'SIGHUP');
  const refused = await daemon.waitFor(/reload refused/, 10_000);
  assert.match(refused, /freight\.conf:10: unknown directive 'max-smtp-outt'/);
  // Old limit (3/h) still in force on the same connection: one more fits, the next is over.
  assert.equal(await client.ask(request(++n)), 'DUNNO');
  assert.match(await client.ask(request(++n)), /^DEFER_IF_PERMIT/);

  writeFileSync(file, conf(port, '5/h'));
  process.kill(daemon.pid, 'SIGHUP');
  await daemon.waitFor(/configuration reloaded/, 10_000);
  // Counters survived: 3 counted under the old limit, so exactly 2 more fit under 5/h.
  assert.equal(await client.ask(request(++n)), 'DUNNO');
  assert.equal(await client.ask(request(++n)), 'DUNNO');
  assert.match(await client.ask(request(++n)), /^DEFER_IF_PERMIT/);
});
