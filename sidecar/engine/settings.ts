/**
 * Engine intake/spool settings read from the global config with defaults. The directives are registered
 * in the config schema under their PowerMTA-style names; until a loaded config carries them, the
 * documented defaults apply, so the engine runs with any config the loader produces.
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

export const ENGINE_DEFAULTS: EngineSettings = {
  spoolMinFree: 1024 ** 3,
  maxQueuedRecipients: 2_000_000,
  maxMessageSize: 50 * 1024 ** 2,
  maxIntakeRecipients: 1000,
  maxSmtpIn: 500,
  spoolCommitDelay: 0,
  dsnMaxBody: 1024 ** 2,
};

function num(g: Record<string, unknown>, key: keyof EngineSettings): number {
  const v = g[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : ENGINE_DEFAULTS[key];
}

export function engineSettings(config: FreightConfig): EngineSettings {
  const g = config.global as unknown as Record<string, unknown>;
  const out = { ...ENGINE_DEFAULTS };
  for (const key of Object.keys(ENGINE_DEFAULTS) as (keyof EngineSettings)[]) out[key] = num(g, key);
  return out;
}
