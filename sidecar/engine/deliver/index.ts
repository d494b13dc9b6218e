/**
 * Delivery over SMTP, as the rest of the engine uses it: open a session to a domain's MX hosts, send a
 * transaction, and turn its per-recipient replies into recorded outcomes.
 */
export { coalesceWrites } from './coalesce-writes.js';
export {
  type ConnectResult,
  connect,
  DEFAULT_TIMEOUTS,
  type SessionTimeouts,
} from './connector.js';
export {
  AttemptOutcome,
  type AttemptPlace,
  type BouncedRecipient,
  type DsnSink,
  type OutcomePorts,
} from './outcome.js';
export type { OutboundSession, RcptReply } from './session.js';
