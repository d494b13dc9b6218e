/**
 * Scheduled retention: on `acct-prune-schedule` (cron) the accounting database loses what is older than
 * `acct-retention`. The tailer owns this because exactly one tailer runs per acct-db (its pid file), it
 * always holds the database open read-write, and nothing on its event loop is latency-critical — the
 * engine's loop carries SMTP sessions and the policy daemon answers Postfix within milliseconds. Its own
 * commits share the connection, so they run between the prune's slices instead of queueing for the lock.
 */
import cron, { type ScheduledTask } from 'node-cron';
import { type PruneResult, pruneAcct } from '../acct/prune.js';
import type { AcctStore } from '../acct/store.js';
import { errorMessage, FreightError } from '../common/errors.js';
import type { Logger } from '../common/log.js';

export class RetentionSchedule {
  private task: ScheduledTask | null = null;
  private expression = '';
  private retentionMs = 0;
  private running: Promise<void> | null = null;
  private readonly abort = new AbortController();

  constructor(
    private readonly store: AcctStore,
    private readonly log: Logger,
  ) {}

  /** Start, or follow a reload; an invalid cron expression throws and leaves the running schedule alone. */
  set(expression: string, retentionMs: number): void {
    if (!cron.validate(expression)) {
      throw new FreightError(
        'TAILER_BAD_SCHEDULE',
        `acct-prune-schedule: invalid cron expression '${expression}'`,
        { expression },
      );
    }
    this.retentionMs = retentionMs;
    if (this.task && expression === this.expression) return;
    void this.task?.destroy();
    this.expression = expression;
    this.task = cron.schedule(expression, () => this.fire(), { unref: true });
  }

  private fire(): void {
    if (this.running) {
      this.log.info('previous accounting prune still running; skipping this one');
      return;
    }
    this.running = this.prune().finally(() => {
      this.running = null;
    });
  }

  private async prune(): Promise<void> {
    let r: PruneResult;
    try {
      r = await pruneAcct(this.store, this.retentionMs, { signal: this.abort.signal });
    } catch (err) {
      this.log.error('accounting prune failed; trying again on the next schedule', {
        error: errorMessage(err),
      });
      return;
    }
    const total = Object.values(r.deleted).reduce((a, b) => a + b, 0);
    if (total === 0 && !r.aborted) return;
    this.log.info(r.aborted ? 'accounting prune stopped early' : 'pruned accounting', {
      cutoff: new Date(r.cutoff).toISOString(),
      ...r.deleted,
      slices: r.slices,
      longestSliceMs: Math.round(r.longestSliceMs),
    });
  }

  /** No new prune starts; a running one stops after its current slice. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.task?.destroy();
    this.task = null;
    await this.running;
  }
}
