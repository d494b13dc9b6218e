/**
 * Typed errors with stable codes. Modules branch on `code`, never on message text.
 * Codes are SCREAMING_SNAKE and prefixed by the component that owns them (CONFIG_, ACCT_, SPOOL_, …).
 */
export class FreightError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FreightError';
    this.code = code;
    this.details = details;
  }
}

export function isFreightError(err: unknown, code?: string): err is FreightError {
  return err instanceof FreightError && (code === undefined || err.code === code);
}

/** Message of any thrown value, for logs. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
