/** The fastify instance: access check on every request, the routes, `/metrics`, and coded JSON errors. */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from '../common/log.js';
import { type AccessPolicy, accessHook } from './auth.js';
import type { Backends } from './clients.js';
import { type ApiErrorBody, toApiError } from './errors.js';
import { MetricsCollector } from './metrics.js';
import { dataRoutes } from './routes-data.js';
import { engineRoutes } from './routes-engine.js';

export interface ServerOptions {
  backends: Backends;
  configPath: string;
  log: Logger;
  /** Read per request, so a reload's new key and CIDRs apply without a restart. */
  access: () => AccessPolicy;
}

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    // Keep requests bounded: a slow client must not hold a socket forever.
    requestTimeout: 30_000,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  });

  app.addHook('onRequest', accessHook(opts.access));

  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toApiError(err);
    if (status >= 500 && status !== 503) {
      opts.log.error('request failed', {
        method: req.method,
        url: req.url,
        code: body.error.code,
        error: body.error.message,
      });
    }
    void reply.code(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({
      error: { code: 'API_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` },
    } satisfies ApiErrorBody);
  });

  engineRoutes(app, opts.backends, opts.configPath, opts.log);
  dataRoutes(app, opts.backends);

  const metrics = new MetricsCollector(opts.backends);
  app.get('/metrics', async (_req, reply) => {
    const text = await metrics.render();
    void reply.header('content-type', metrics.contentType);
    return text;
  });

  await app.ready();
  return app;
}
