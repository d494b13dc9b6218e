/**
 * Intake, as the rest of the engine uses it: the LMTP/SMTP listener that spools a message before it
 * answers, and the RFC 5322 date format its headers use.
 */
export { rfc5322Date } from './headers.js';
export { Intake } from './listener.js';
