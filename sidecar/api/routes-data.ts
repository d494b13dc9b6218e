/**
 * Routes over shared state other daemons own: accounting summaries (the query `freight acct summary`
 * uses), ramp shares (RampState, as `freight ramp set|show`; the running ramp re-reads them within a
 * second), the suppression list (SuppressionList, as `freight suppress`) and the policy daemon's stats.
 */
import type { FastifyInstance } from 'fastify';
import { parseTimeArg } from '../acct/cli-db.js';
import { SUMMARY_GROUPS, type SummaryBy, summary } from '../acct/query.js';
import { FreightError } from '../common/errors.js';
import { parseDuration } from '../config/units.js';
import { parseRampDomain, parseRampPercent, rampReport } from '../ramp/state.js';
import type { SuppressionSource } from '../suppress/list.js';
import type { Backends } from './clients.js';

const SOURCES = ['manual', 'bounce', 'complaint'] as const;

export function dataRoutes(app: FastifyInstance, backends: Backends): void {
  acctRoutes(app, backends);
  rampRoutes(app, backends);
  suppressionQueryRoutes(app, backends);
  suppressionEditRoutes(app, backends);
  policyRoutes(app, backends);
}

function acctRoutes(app: FastifyInstance, backends: Backends): void {
  app.get<{ Querystring: { by?: SummaryBy; since?: string; until?: string; domain?: string } }>(
    '/acct/summary',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            by: { type: 'string', enum: [...SUMMARY_GROUPS] },
            since: { type: 'string', minLength: 1 },
            until: { type: 'string', minLength: 1 },
            domain: { type: 'string', minLength: 1 },
          },
        },
      },
    },
    (req) =>
      summary(backends.acctStore(), {
        by: req.query.by,
        since: parseTimeArg(req.query.since),
        until: parseTimeArg(req.query.until),
        domain: req.query.domain,
      }),
  );
}

function rampRoutes(app: FastifyInstance, backends: Backends): void {
  app.get('/ramp', () => rampReport(backends.rampState()));

  app.put<{ Params: { domain: string }; Body: { percent: number | string } }>(
    '/ramp/:domain',
    {
      schema: {
        body: {
          type: 'object',
          required: ['percent'],
          additionalProperties: false,
          properties: { percent: { anyOf: [{ type: 'number' }, { type: 'string', maxLength: 16 }] } },
        },
      },
    },
    (req) => {
      const domain = parseRampDomain(req.params.domain);
      const raw = String(req.body.percent);
      const percent = raw.toLowerCase() === 'off' ? null : parseRampPercent(raw);
      const state = backends.rampState();
      const before = state.shares().find((s) => s.domain === domain)?.percent ?? null;
      if (percent === null) state.removeShare(domain);
      else state.setShare(domain, percent);
      return { domain, before, percent };
    },
  );
}

/** One address checked, or the list filtered by source and kind. */
function suppressionQueryRoutes(app: FastifyInstance, backends: Backends): void {
  app.get<{
    Querystring: {
      address?: string;
      source?: SuppressionSource;
      kind?: 'address' | 'domain';
      limit?: number;
    };
  }>(
    '/suppression',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            address: { type: 'string', minLength: 1, maxLength: 320 },
            source: { type: 'string', enum: [...SOURCES] },
            kind: { type: 'string', enum: ['address', 'domain'] },
            limit: { type: 'integer', minimum: 1, maximum: 100_000, default: 1000 },
          },
        },
      },
    },
    (req) => {
      const list = backends.suppressionList();
      const { address, source, kind, limit } = req.query;
      if (address !== undefined) {
        const entry = list.check(address) ?? null;
        return { address: address.toLowerCase(), suppressed: entry !== null, entry };
      }
      return list.list({ source, kind, limit });
    },
  );
}

function suppressionEditRoutes(app: FastifyInstance, backends: Backends): void {
  app.post<{
    Body: {
      address?: string;
      domain?: string;
      reason?: string;
      source?: SuppressionSource;
      expiresAt?: number | string;
    };
  }>(
    '/suppression',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          oneOf: [{ required: ['address'] }, { required: ['domain'] }],
          properties: {
            address: { type: 'string', minLength: 3, maxLength: 320 },
            domain: { type: 'string', minLength: 1, maxLength: 253 },
            reason: { type: 'string', maxLength: 1000 },
            source: { type: 'string', enum: [...SOURCES] },
            expiresAt: {
              anyOf: [
                { type: 'integer', minimum: 0 },
                { type: 'string', minLength: 1, maxLength: 40 },
              ],
            },
          },
        },
      },
    },
    async (req, reply) => {
      const { address, domain, reason, source, expiresAt } = req.body;
      const entry = backends.suppressionList().add({
        ...(address !== undefined ? { address } : { domain }),
        reason: reason ?? 'added over the API',
        source: source ?? 'manual',
        expiresAt: expiresAt === undefined ? null : expiryOf(expiresAt),
      });
      reply.code(201);
      return entry;
    },
  );

  app.delete<{ Params: { entry: string } }>('/suppression/:entry', (req) => {
    if (!backends.suppressionList().remove(req.params.entry)) {
      throw new FreightError('SUPPRESS_NOT_FOUND', `${req.params.entry} is not on the suppression list`);
    }
    return { removed: req.params.entry.toLowerCase() };
  });
}

function policyRoutes(app: FastifyInstance, backends: Backends): void {
  app.get<{ Querystring: { top: number } }>(
    '/policy/stats',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { top: { type: 'integer', minimum: 1, maximum: 1000, default: 20 } },
        },
      },
    },
    async (req) => {
      const s = await backends.policyStats();
      s.counters = s.counters.slice(0, req.query.top);
      s.mostLimited = s.mostLimited.slice(0, req.query.top);
      return s;
    },
  );
}

/** `expiresAt`: epoch ms, an ISO time, or a duration from now (`30d`). */
function expiryOf(value: number | string, now = Date.now()): number {
  if (typeof value === 'number') return value;
  if (/^\d{4}-\d\d-\d\d/.test(value)) {
    const t = Date.parse(value);
    if (!Number.isNaN(t)) return t;
  } else {
    try {
      return now + parseDuration(value);
    } catch {
      // fall through to the error below
    }
  }
  throw new FreightError(
    'SUPPRESS_BAD_EXPIRY',
    `expiresAt must be epoch ms, an ISO time or a duration like 30d: ${value}`,
  );
}
