/** Failure DSNs, as the daemon uses them: composed, kept in their outbox and handed to Postfix. */
export { DsnSender } from './sender.js';
