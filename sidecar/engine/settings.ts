/**
 * Engine intake/spool settings: the global directives declared for the engine (spool-min-free,
 * max-queued-recipients, …), every one with a default, so a loaded config always carries them.
 */
import type { FreightConfig } from '../config/model.js';

export interface EngineSettings {
  /** `spool-min-free`: intake answers 452 4.3.1 when the spool's filesystem has less free space. */
  spoolMinFree: number;
  /** `max-queued-recipients`: intake answers 452 4.3.1 when the scheduler holds more recipients. */
  maxQueuedRecipients: number;
  /** `max-message-size`: larger messages get 552 5.3.4. */
  maxMessageSize: number;
  /** `max-rcpt-per-message` at intake (per transaction). */
  maxIntakeRecipients: number;
  /** `max-smtp-in`: concurrent intake connections. */
  maxSmtpIn: number;
  /** `spool-commit-delay`: extra wait before a group-commit round, to gather more messages (ms). */
  spoolCommitDelay: number;
  /** `dsn-max-body`: how much of the original message a RET=FULL DSN carries (bytes). */
  dsnMaxBody: number;
}

export function engineSettings(config: FreightConfig): EngineSettings {
  const g = config.global;
  return {
    spoolMinFree: g.spoolMinFree,
    maxQueuedRecipients: g.maxQueuedRecipients,
    maxMessageSize: g.maxMessageSize,
    maxIntakeRecipients: g.maxIntakeRecipients,
    maxSmtpIn: g.maxSmtpIn,
    spoolCommitDelay: g.spoolCommitDelay,
    dsnMaxBody: g.dsnMaxBody,
  };
}
