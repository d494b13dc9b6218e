/**
 * The engine's control channel, as the rest of the engine uses it: the request and report types, and
 * the socket server the daemon answers on.
 */
export type * from './protocol.js';
export { ControlServer } from './server.js';
