/**
 * Typed errors with stable codes. Modules branch on `code`, never on message text. Every code is
 * declared in error-codes.ts, by the component that owns it; an undeclared one does not typecheck.
 */
import type { ErrorCode } from './error-codes.js';

export class FreightError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FreightError';
    this.code = code;
    this.details = details;
  }
}

export function isFreightError(err: unknown, code?: ErrorCode): err is FreightError {
  return err instanceof FreightError && (code === undefined || err.code === code);
}

/** Message of any thrown value, for logs. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
