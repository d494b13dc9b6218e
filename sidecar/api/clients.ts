/**
 * The API holds no engine state: it asks the daemons over their control channels and reads the
 * accounting database. This module is the one place that knows how to reach each of them; the routes and
 * the metrics collector share it. Database handles open on first use (a fresh install may have no acct-db
 * yet) and stay open, so the suppression list's in-memory copy is refreshed rather than reloaded per call.
 */
import { statSync } from 'node:fs';
import { AcctQuarantine } from '../acct/quarantine.js';
import { AcctStore } from '../acct/store.js';
import { pidFilePath, readLivePid } from '../common/daemon.js';
import type { FreightConfig } from '../config/model.js';
import { controlRequest } from '../engine/control/client.js';
import type { ControlRequest } from '../engine/control/protocol.js';
import { fetchStats, type PolicyStats } from '../policy/stats.js';
import { RampState } from '../ramp/state.js';
import { SuppressionList } from '../suppress/list.js';

export interface TailerLag {
  maillog: string;
  /** Maillog bytes not yet committed to accounting (the whole file if the tailer is still on a rotated one). */
  bytes: number;
  /** Seconds since the tailer last committed, while bytes are waiting; 0 when caught up. */
  seconds: number;
  /** The tailer's committed offset and when it was committed (epoch ms); null if it never ran. */
  offset: number | null;
  committedAt: number | null;
}

export class Backends {
  private acct: AcctStore | null = null;
  private quarantine: AcctQuarantine | null = null;
  private suppression: SuppressionList | null = null;
  private ramp: RampState | null = null;

  constructor(private config: FreightConfig) {}

  /** New config after a reload; acct-db is bound at first use (changing it needs a restart, like the daemons). */
  setConfig(config: FreightConfig): void {
    this.config = config;
  }

  get global(): FreightConfig['global'] {
    return this.config.global;
  }

  engine<T>(req: ControlRequest, timeoutMs = 5000): Promise<T> {
    return controlRequest(this.config.global.runDir, req, timeoutMs) as Promise<T>;
  }

  policyStats(timeoutMs = 5000): Promise<PolicyStats> {
    return fetchStats(this.config.global.runDir, timeoutMs);
  }

  /** Whether a daemon's pid file names a live process (for daemons without a control socket). */
  daemonRunning(name: string): boolean {
    return readLivePid(pidFilePath(this.config.global.runDir, name)) !== null;
  }

  acctStore(): AcctStore {
    this.acct ??= AcctStore.open(this.config.global.acctDb);
    return this.acct;
  }

  /** Rows in acct_quarantine: refused rows of every writer (engine, tailer, import), not one daemon's. */
  acctQuarantined(): number {
    this.quarantine ??= new AcctQuarantine(this.acctStore().db);
    return this.quarantine.total();
  }

  suppressionList(): SuppressionList {
    if (!this.suppression) this.suppression = SuppressionList.open(this.acctStore());
    else this.suppression.refresh();
    return this.suppression;
  }

  rampState(): RampState {
    this.ramp ??= RampState.open(this.config.global.acctDb, { busyTimeoutMs: 2000 });
    return this.ramp;
  }

  /**
   * Tailer lag from its committed position (table `tailer_position`, written by sidecar/tailer/offset-store.ts
   * in the same transaction as the rows) against the maillog's current size. Read directly because the
   * tailer's own accessor omits the commit time and constructing its store would prepare its writers.
   */
  tailerLag(now = Date.now()): TailerLag | null {
    const maillog = this.config.global.maillog;
    let size: number;
    let ino: number;
    try {
      const st = statSync(maillog);
      size = st.size;
      ino = st.ino;
    } catch {
      return null;
    }
    let pos: { offset: number; ino: number; updatedAt: number } | undefined;
    try {
      pos = this.acctStore()
        .db.prepare("SELECT offset, ino, updatedAt FROM tailer_position WHERE name = 'maillog'")
        .get() as typeof pos;
    } catch {
      pos = undefined;
    }
    if (!pos) return { maillog, bytes: size, seconds: 0, offset: null, committedAt: null };
    // After rotation the saved offset belongs to the old file; everything in the new one is still unread.
    const bytes = pos.ino === ino ? Math.max(0, size - pos.offset) : size;
    const seconds = bytes > 0 ? Math.max(0, (now - pos.updatedAt) / 1000) : 0;
    return { maillog, bytes, seconds, offset: pos.offset, committedAt: pos.updatedAt };
  }

  close(): void {
    this.ramp?.close();
    this.acct?.close();
    this.ramp = null;
    this.acct = null;
    this.quarantine = null;
    this.suppression = null;
  }
}
