/**
 * Errors of the test world itself (a sink that cannot listen, a DNS record that cannot be served, an
 * address off loopback). They are not the product's: their codes stay out of Freight's registry, and a
 * test tells a broken world from a failing product by the class.
 */
export type WorldErrorCode =
  | 'WORLD_BAD_ADDRESS'
  | 'WORLD_CERT'
  | 'WORLD_DNS_BAD_RECORD'
  | 'WORLD_DNS_LISTEN'
  | 'WORLD_NOT_LOOPBACK'
  | 'WORLD_SINK_BAD_SCRIPT'
  | 'WORLD_SINK_LISTEN'
  | 'WORLD_SINK_TIMEOUT';

export class WorldError extends Error {
  readonly code: WorldErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: WorldErrorCode,
    message: string,
    details?: Record<string, unknown>,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'WorldError';
    this.code = code;
    this.details = details;
  }
}
