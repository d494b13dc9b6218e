/**
 * Every API error is `{ error: { code, message } }` with a stable code. Errors of the daemons behind the
 * API keep their own codes (RAMP_BAD_PERCENT, SUPPRESS_BAD_KEY …) except "that daemon is not running",
 * which becomes one code per daemon so a client has a single thing to test for.
 */
import { errorMessage, isFreightError } from '../common/errors.js';

export interface ApiErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

const UNAVAILABLE: Record<string, string> = {
  ENGINE_NOT_RUNNING: 'ENGINE_UNAVAILABLE',
  ENGINE_CONTROL_TIMEOUT: 'ENGINE_UNAVAILABLE',
  ENGINE_CONTROL_FAILED: 'ENGINE_UNAVAILABLE',
  POLICY_NOT_RUNNING: 'POLICY_UNAVAILABLE',
  POLICY_STATS_TIMEOUT: 'POLICY_UNAVAILABLE',
  POLICY_STATS_BAD: 'POLICY_UNAVAILABLE',
  ACCT_DB_MISSING: 'ACCT_UNAVAILABLE',
  ACCT_DB_OPEN: 'ACCT_UNAVAILABLE',
};

const STATUS: Record<string, number> = {
  API_KEY_REQUIRED: 401,
  API_KEY_INVALID: 401,
  API_KEY_NOT_CONFIGURED: 403,
  API_READ_FORBIDDEN: 403,
  API_NOT_FOUND: 404,
  SUPPRESS_NOT_FOUND: 404,
  API_BAD_REQUEST: 400,
  CONFIG_INVALID: 422,
  ENGINE_UNAVAILABLE: 503,
  POLICY_UNAVAILABLE: 503,
  ACCT_UNAVAILABLE: 503,
};

/** Codes that mean "your input was wrong" (400), from the modules the API calls. */
const BAD_INPUT = /^(ACCT_BAD_|RAMP_BAD_|SUPPRESS_BAD_|ENGINE_CONTROL_BAD_REQUEST$)/;

export function toApiError(err: unknown): { status: number; body: ApiErrorBody } {
  if (isFreightError(err)) {
    const code = UNAVAILABLE[err.code] ?? err.code;
    const status = STATUS[code] ?? (BAD_INPUT.test(code) ? 400 : 500);
    return { status, body: { error: { code, message: err.message } } };
  }
  const fst = err as { code?: string; statusCode?: number; validation?: unknown };
  // Fastify's own errors: schema validation, bad JSON, body too large, unsupported media type.
  if (
    fst.validation ||
    (typeof fst.statusCode === 'number' && fst.statusCode >= 400 && fst.statusCode < 500)
  ) {
    return {
      status: typeof fst.statusCode === 'number' ? fst.statusCode : 400,
      body: { error: { code: 'API_BAD_REQUEST', message: errorMessage(err) } },
    };
  }
  return { status: 500, body: { error: { code: 'API_INTERNAL', message: errorMessage(err) } } };
}
