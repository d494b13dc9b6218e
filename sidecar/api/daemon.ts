/**
 * `freight api`: the management API daemon. Listens on http-mgmt-listener (loopback by default; any other
 * address is the operator's explicit choice and is logged as a warning). A reload applies a new API key
 * and read CIDRs at once; a new listener address needs a restart, like the other daemons' listeners.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../common/log.js';
import type { FreightConfig, HostPort } from '../config/model.js';
import { type AccessPolicy, isLoopbackHost, readAllowList } from './auth.js';
import { Backends } from './clients.js';
import { buildServer } from './server.js';

function accessOf(config: FreightConfig): AccessPolicy {
  const key = config.global.httpApiKey;
  return {
    apiKey: key === null || key === '' ? null : key,
    readAllow: readAllowList(config.global.httpReadAllow),
  };
}

function warnExposure(config: FreightConfig, log: Logger): void {
  const { host } = config.global.httpMgmtListener;
  if (!isLoopbackHost(host)) {
    log.warn('management API listens on a non-loopback address (http-mgmt-listener); protect it', {
      address: host,
    });
  }
  if (!config.global.httpApiKey) log.warn('no http-api-key configured: state-changing API calls are refused');
  const open = config.global.httpReadAllow.filter((c) => !isLoopbackHost(c.split('/')[0]!));
  if (open.length > 0)
    log.warn('read calls are open to non-loopback ranges (http-read-allow)', { cidrs: open.join(',') });
}

export class ApiDaemon {
  private constructor(
    private readonly app: FastifyInstance,
    private readonly backends: Backends,
    private access: AccessPolicy,
    private listener: HostPort,
    private readonly log: Logger,
  ) {}

  static async start(config: FreightConfig, configPath: string, log: Logger): Promise<ApiDaemon> {
    const backends = new Backends(config);
    let daemon: ApiDaemon | null = null;
    const app = await buildServer({ backends, configPath, log, access: () => daemon!.access });
    daemon = new ApiDaemon(app, backends, accessOf(config), config.global.httpMgmtListener, log);
    warnExposure(config, log);
    const { host, port } = config.global.httpMgmtListener;
    try {
      await app.listen({ host, port });
    } catch (err) {
      backends.close();
      throw err;
    }
    const address = app.server.address();
    const bound =
      typeof address === 'object' && address ? `${address.address}:${address.port}` : `${host}:${port}`;
    log.info(`listening on http://${bound}`, { readAllow: config.global.httpReadAllow.join(',') });
    return daemon;
  }

  reload(next: FreightConfig): void {
    const l = next.global.httpMgmtListener;
    if (l.host !== this.listener.host || l.port !== this.listener.port) {
      this.log.warn('http-mgmt-listener changes take effect after a restart');
    }
    this.backends.setConfig(next);
    this.access = accessOf(next);
    warnExposure(next, this.log);
  }

  async stop(): Promise<void> {
    await this.app.close();
    this.backends.close();
  }
}
