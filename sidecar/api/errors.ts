/**
 * Every API error is `{ error: { code, message } }` with a stable code. Errors of the daemons behind the
 * API keep their own codes (RAMP_BAD_PERCENT, ENGINE_UNAVAILABLE …); the HTTP status is the one declared
 * with the code (common/error-codes.ts), 500 for a code declared without one.
 */
import { declarationOf, type ErrorCode } from '../common/error-codes.js';
import { errorMessage, isFreightError } from '../common/errors.js';

export interface ApiErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
}

export function toApiError(err: unknown): { status: number; body: ApiErrorBody } {
  if (isFreightError(err)) {
    const status = declarationOf(err.code)?.status ?? 500;
    return { status, body: { error: { code: err.code, message: err.message } } };
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
