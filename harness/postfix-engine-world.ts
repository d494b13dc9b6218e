/**
 * Postfix in front of an engine: the world of the tests that submit to a real private Postfix and see
 * what the engine behind it delivers. A DNS server, sink MX servers sharing one port on their own
 * addresses of the file's subnet (each domain's MX and A records pointing at its sink), a private
 * Postfix whose freight.conf points the engine at that DNS and port, and the engine itself: in this
 * process (`EngineDaemon`), as a real `freight engine` process, or left to the test to start.
 */
import { EngineDaemon } from '../sidecar/engine/daemon.js';
import { startDnsServer, type TestDns } from './dns.js';
import { type FreightDaemon, startFreight } from './freight.js';
import { addr, freePort, testSubnet } from './ports.js';
import { startTestPostfix, type TestPostfix } from './postfix.js';
import { type Sink, type SinkOptions, startSink } from './sink.js';

/** One sink MX, at `addr(subnet, at)`. */
export interface WorldSink extends Omit<SinkOptions, 'host' | 'port'> {
  at: number;
}

export interface PostfixEngineWorldOptions {
  /** The sinks; all listen on one port, the one the engine's `remote-smtp-port` names. */
  sinks: WorldSink[];
  /** Domain → the `at` of the sink its MX points to. */
  mx: Record<string, number>;
  /** freight.conf blocks (virtual MTAs, domains …), given the subnet's addresses and the sink port. */
  freightConf(ip: (n: number) => string, port: number): string;
  /** More global directives (name → value) besides the DNS server and the sinks' port. */
  globals?: Record<string, string>;
  /** Static Postfix transport entries, e.g. a sender domain kept on the Postfix path. */
  transports?(ip: (n: number) => string, port: number): string[];
  /** Who starts the engine: 'in-process' (default), 'process' (`freight engine`), or 'none'. */
  engine?: 'in-process' | 'process' | 'none';
}

export interface PostfixEngineWorld {
  ip(n: number): string;
  /** The sinks' shared port. */
  port: number;
  dns: TestDns;
  postfix: TestPostfix;
  /** The sinks, in the order of the options' `sinks`. */
  sinks: Sink[];
  /** The engine the world started in this process ('in-process'), else null. */
  engine: EngineDaemon | null;
  /** The engine the world started as a process ('process'), else null. */
  engineProcess: FreightDaemon | null;
  /** Starts `freight engine` on the world's config and waits until it serves. */
  startEngineProcess(timeoutMs?: number): Promise<FreightDaemon>;
  /** Stops everything the world started, the engine first. */
  stop(): Promise<void>;
}

/** The DNS server's address in every world: a fixed host of the file's subnet. */
const DNS_AT = 53;

export async function startPostfixEngineWorld(opts: PostfixEngineWorldOptions): Promise<PostfixEngineWorld> {
  const subnet = testSubnet();
  const ip = (n: number) => addr(subnet, n);
  const dns = await startDnsServer({ host: ip(DNS_AT) });
  const sinks: Sink[] = [];
  let postfix: TestPostfix | undefined;
  let engine: EngineDaemon | null = null;
  let engineProcess: FreightDaemon | null = null;
  const stop = async () => {
    await engine?.stop();
    await engineProcess?.stop();
    await postfix?.stop();
    for (const s of sinks) await s.close();
    await dns.close();
  };
  try {
    const port = await freePort(ip(opts.sinks[0]?.at ?? 21));
    for (const { at, ...sinkOpts } of opts.sinks)
      sinks.push(await startSink({ ...sinkOpts, host: ip(at), port }));
    for (const [domain, at] of Object.entries(opts.mx)) {
      dns.mx(domain, [{ exchange: `mx.${domain}`, priority: 10 }]);
      dns.a(`mx.${domain}`, [ip(at)]);
    }
    const pf = await startTestPostfix({
      globals: { ...opts.globals, 'dns-server': dns.address, 'remote-smtp-port': String(port) },
      ...(opts.transports ? { transports: opts.transports(ip, port) } : {}),
      freightConf: opts.freightConf(ip, port),
    });
    postfix = pf;
    const startEngineProcess = async (timeoutMs = 30_000) => {
      const d = startFreight(['engine', '--config', pf.configPath]);
      await d.waitFor(/engine started/, timeoutMs);
      return d;
    };
    const mode = opts.engine ?? 'in-process';
    if (mode === 'in-process') engine = await EngineDaemon.start(pf.configPath);
    if (mode === 'process') engineProcess = await startEngineProcess();
    return {
      ip,
      port,
      dns,
      postfix: pf,
      sinks,
      engine,
      engineProcess,
      startEngineProcess,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
