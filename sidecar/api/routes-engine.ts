/**
 * Engine routes: the same control requests as `freight show|pause|resume|schedule`, answered as JSON, and
 * POST /reload (the same as `freight reload`: check the config, re-render and reload the private Postfix
 * if it runs, SIGHUP every running daemon).
 */
import type { FastifyInstance } from 'fastify';
import { FreightError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { checkConfig } from '../config/load.js';
import type {
  DomainInfo,
  EngineStatusReport,
  QueueActionResult,
  QueueInfo,
  ScheduleResult,
  VmtaInfo,
} from '../engine/control/protocol.js';
import { masterPid, reloadPostfix } from '../postfix/instance.js';
import { postfixLayout } from '../postfix/layout.js';
import { renderPostfix } from '../postfix/render.js';
import { signalDaemons } from '../stack/signal.js';
import type { Backends } from './clients.js';

const NAME = { type: 'string', minLength: 1, maxLength: 253, pattern: '^[^/\\s]+$' } as const;

const queueBody = {
  type: 'object',
  additionalProperties: false,
  properties: { vmta: NAME },
} as const;

export function engineRoutes(
  app: FastifyInstance,
  backends: Backends,
  configPath: string,
  log: Logger,
): void {
  app.get('/status', () => backends.engine<EngineStatusReport>({ op: 'status' }));
  app.get('/queues', () => backends.engine<QueueInfo[]>({ op: 'queues' }));
  app.get('/domains', () => backends.engine<DomainInfo[]>({ op: 'domains' }));
  app.get('/vmtas', () => backends.engine<VmtaInfo[]>({ op: 'vmtas' }));

  for (const op of ['pause', 'resume'] as const) {
    app.post<{ Params: { domain: string }; Body: { vmta?: string } | undefined }>(
      `/queues/:domain/${op}`,
      { schema: { params: { type: 'object', properties: { domain: NAME } }, body: queueBody } },
      (req) => {
        const vmta = req.body?.vmta;
        return backends.engine<QueueActionResult>(
          vmta ? { op, domain: req.params.domain, vmta } : { op, domain: req.params.domain },
        );
      },
    );
    app.post<{ Params: { domain: string; vmta: string } }>(
      `/queues/:domain/:vmta/${op}`,
      { schema: { params: { type: 'object', properties: { domain: NAME, vmta: NAME } } } },
      (req) => backends.engine<QueueActionResult>({ op, domain: req.params.domain, vmta: req.params.vmta }),
    );
  }

  app.post<{ Params: { domain: string } }>(
    '/domains/:domain/schedule',
    { schema: { params: { type: 'object', properties: { domain: NAME } } } },
    (req) => backends.engine<ScheduleResult>({ op: 'schedule', domain: req.params.domain }),
  );

  app.post('/reload', async () => {
    const { config, errors } = checkConfig(configPath);
    if (!config) {
      throw new FreightError(
        'CONFIG_INVALID',
        `${configPath}: ${errors.length} error(s); nothing reloaded: ${errors.slice(0, 5).join('; ')}`,
      );
    }
    const layout = postfixLayout(config.global.postfixDir);
    let postfix = false;
    if (masterPid(layout)) {
      renderPostfix(config);
      await reloadPostfix(config.global.postfixCommandDir, layout);
      postfix = true;
    }
    const daemons = signalDaemons(config.global.runDir, 'SIGHUP');
    log.info('reload requested over the API', { postfix, daemons: daemons.map((d) => d.name).join(',') });
    return { postfix, daemons };
  });
}
