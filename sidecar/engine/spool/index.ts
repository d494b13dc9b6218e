/**
 * The durable spool, as the rest of the engine uses it: accept a message once it is on disk, record
 * recipient outcomes, read bodies back, and the accounting rows built from its journal records.
 */
export { type AcctEvent, type AttemptPlace, eventRow, receivedRows } from './acct-rows.js';
export type { SpoolEntry } from './entry.js';
export { spoolFsync } from './fsync.js';
export { Spool } from './spool.js';
