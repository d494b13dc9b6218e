/**
 * Shared set-up for the delivery-half tests: a loopback DNS server, sink MX servers on one port across
 * distinct 127.x addresses, a config written as freight.conf text and loaded by the real loader, real
 * SQLite accounting, the real classifier and suppression list, and an in-memory spool standing in for
 * the intake half (its journal updates and removals are recorded so tests can assert them).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  addr,
  freePort,
  type Sink,
  type SinkScript,
  startDnsServer,
  startSink,
  type TestDns,
  testSubnet,
} from '../harness/index.js';
import type { AcctRecord } from '../sidecar/acct/record.js';
import { AcctStore } from '../sidecar/acct/store.js';
import { AcctWriter } from '../sidecar/acct/writer.js';
import { BounceClassifier } from '../sidecar/classify/classifier.js';
import { loadConfig } from '../sidecar/config/load.js';
import type { FreightConfig } from '../sidecar/config/model.js';
import type { BouncedRecipient } from '../sidecar/engine/deliver/outcome.js';
import { createScheduler, type Scheduler, type SchedulerDeps } from '../sidecar/engine/schedule/scheduler.js';
import type { RecipientUpdate, SpooledMessage, SpoolPort } from '../sidecar/engine/types.js';
import { SuppressionList } from '../sidecar/suppress/list.js';

export class MemorySpool implements SpoolPort {
  readonly bodies = new Map<string, Buffer>();
  readonly updates: RecipientUpdate[] = [];
  readonly removed = new Set<string>();
  update(updates: RecipientUpdate[]): void {
    this.updates.push(...updates);
  }
  readBody(msg: SpooledMessage): Promise<Buffer> {
    const body = this.bodies.get(msg.id);
    return body ? Promise.resolve(body) : Promise.reject(new Error(`no body for ${msg.id}`));
  }
  openBody(msg: SpooledMessage): NodeJS.ReadableStream {
    const body = this.bodies.get(msg.id);
    if (!body) throw new Error(`no body for ${msg.id}`);
    return Readable.from([body]);
  }
  remove(msg: SpooledMessage): void {
    this.removed.add(msg.id);
  }
}

export interface World {
  dir: string;
  dns: TestDns;
  subnet: string;
  /** Port every sink listens on (the config's remote-smtp-port). */
  port: number;
  sinks: Map<string, Sink>;
  store: AcctStore;
  writer: AcctWriter;
  suppression: SuppressionList;
  spool: MemorySpool;
  dsns: Array<{ msg: SpooledMessage; rcpts: BouncedRecipient[] }>;
  config: FreightConfig;
  scheduler: Scheduler;
  /** Address n of this world's subnet. */
  ip(n: number): string;
  /** `domain`'s one MX, `mx.<domain>`, at address n of this world's subnet. */
  mxAt(domain: string, n: number): void;
  startSink(n: number, script?: SinkScript, opts?: { tls?: boolean; keepRaw?: boolean }): Promise<Sink>;
  /** Write config text (with the world's globals prepended) and load it. */
  loadConfig(text: string): FreightConfig;
  message(id: string, rcpts: string[], opts?: Partial<SpooledMessage>): SpooledMessage;
  rows(where?: string, ...params: unknown[]): AcctRecord[];
  close(): Promise<void>;
}

let seq = 0;

export async function startWorld(
  configText: (w: { ip: (n: number) => string }) => string,
  deps: Partial<SchedulerDeps> = {},
): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'freight-delivery-'));
  const subnet = testSubnet();
  const ip = (n: number) => addr(subnet, n);
  const dns = await startDnsServer({ host: ip(53) });
  const port = await freePort(ip(1));
  const store = AcctStore.open(join(dir, 'acct.db'));
  const writer = new AcctWriter(store, { flushMs: 20 });
  const suppression = SuppressionList.open(store);
  const spool = new MemorySpool();
  const dsns: World['dsns'] = [];
  const sinks = new Map<string, Sink>();
  const globals = [
    'host-name engine.test',
    `spool-dir ${join(dir, 'spool')}`,
    `acct-db ${join(dir, 'acct.db')}`,
    `dns-server ${dns.address}`,
    `remote-smtp-port ${port}`,
    '',
  ].join('\n');
  const load = (text: string) => {
    const file = join(dir, `freight-${++seq}.conf`);
    writeFileSync(file, globals + text);
    return loadConfig(file);
  };
  const config = load(configText({ ip }));
  const scheduler = createScheduler({
    config,
    spool,
    acct: writer,
    classifier: BounceClassifier.load(),
    suppression,
    dsnSink: { bounced: (msg, rcpts) => dsns.push({ msg, rcpts }) },
    timeouts: { connectMs: 2000, greetingMs: 3000, commandMs: 5000, transactionMs: 10_000 },
    ...deps,
  });
  return {
    dir,
    dns,
    subnet,
    port,
    sinks,
    store,
    writer,
    suppression,
    spool,
    dsns,
    config,
    scheduler,
    ip,
    mxAt(domain, n) {
      dns.mx(domain, [{ exchange: `mx.${domain}`, priority: 10 }]);
      dns.a(`mx.${domain}`, [ip(n)]);
    },
    async startSink(n, script, opts) {
      const sink = await startSink({
        host: ip(n),
        port,
        ...(script ? { script } : {}),
        ...(opts?.tls ? { tls: true } : {}),
        ...(opts?.keepRaw ? { keepRaw: true } : {}),
      });
      sinks.set(ip(n), sink);
      return sink;
    },
    loadConfig: load,
    message(id, rcpts, opts = {}) {
      const body = Buffer.from(
        `From: sender@example.net\r\nTo: ${rcpts[0]}\r\nSubject: test ${id}\r\nMessage-ID: <${id}@example.net>\r\n\r\nHello ${id}\r\n`,
      );
      spool.bodies.set(id, body);
      return {
        id,
        sender: 'sender@example.net',
        envId: null,
        ret: null,
        receivedAt: Date.now(),
        size: body.length,
        jobId: null,
        vmtaRequest: null,
        postfixQueueId: null,
        messageId: `<${id}@example.net>`,
        sourceIp: '127.0.0.1',
        recipients: rcpts.map((rcpt) => ({
          rcpt,
          orcpt: null,
          notify: null,
          state: 'queued' as const,
          attempts: 0,
          nextAttemptAt: 0,
          lastDiag: null,
        })),
        ...opts,
      };
    },
    rows(where = '1=1', ...params) {
      writer.flush();
      return store.db.prepare(`SELECT * FROM acct WHERE ${where} ORDER BY id`).all(...params) as AcctRecord[];
    },
    async close() {
      await scheduler.close();
      for (const s of sinks.values()) await s.close();
      await dns.close();
      writer.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** freight.conf text: virtual MTAs mta1 (source .11) and mta2 (source .12) in the pool `pool`. */
export function poolOfTwo(ip: (n: number) => string): string {
  return `<virtual-mta mta1>
  smtp-source-host ${ip(11)} mta1.engine.test
</virtual-mta>
<virtual-mta mta2>
  smtp-source-host ${ip(12)} mta2.engine.test
</virtual-mta>
<virtual-mta-pool pool>
  virtual-mta mta1
  virtual-mta mta2
</virtual-mta-pool>`;
}
