/**
 * The engine's control channel, as the rest of the engine uses it: the request and report types, the
 * socket server the daemon answers on and the client the CLI asks it with.
 */
export { controlRequest } from './client.js';
export type * from './protocol.js';
export { ControlServer } from './server.js';
