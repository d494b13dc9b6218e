/**
 * Time and schedules as dependencies, so the deliverability state machines run on a simulated clock in
 * tests and on the real one (timers, node-cron) in the engine.
 */
import cron from 'node-cron';
import { FreightError } from '../common/errors.js';

export interface Clock {
  now(): number;
  /** Runs `fn` after `ms`; returns a cancel function. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** setTimeout's ceiling (~24.8 days); longer waits re-arm. */
const MAX_TIMER = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const due = Date.now() + ms;
    let timer: NodeJS.Timeout;
    const arm = () => {
      timer = setTimeout(
        () => (Date.now() >= due ? fn() : arm()),
        Math.min(Math.max(due - Date.now(), 0), MAX_TIMER),
      );
      timer.unref();
    };
    arm();
    return () => clearTimeout(timer);
  },
};

/** A clock tests move by hand: `advance(ms)` runs every timer that comes due, in order. */
export class ManualClock implements Clock {
  private t: number;
  private timers: { due: number; seq: number; fn: () => void }[] = [];
  private seq = 0;

  constructor(start = Date.UTC(2026, 2, 5, 0, 0, 0)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const entry = { due: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(entry);
    return () => {
      this.timers = this.timers.filter((e) => e !== entry);
    };
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.due - b.due || a.seq - b.seq);
      const next = this.timers[0];
      if (!next || next.due > end) break;
      this.timers.shift();
      this.t = next.due;
      next.fn();
    }
    this.t = end;
  }
}

/** Something run on a cron schedule; `stop()` ends it. */
export interface CronHandle {
  stop(): void;
}
export type CronStarter = (expression: string, fn: () => void | Promise<void>) => CronHandle;

/** node-cron (6-field with seconds, or classic 5-field expressions); overlapping runs are skipped. */
export const nodeCronStarter: CronStarter = (expression, fn) => {
  if (!cron.validate(expression)) {
    throw new FreightError('DELIV_BAD_CONFIG', `invalid cron expression '${expression}'`, { expression });
  }
  const task = cron.schedule(expression, () => fn(), { noOverlap: true, unref: true });
  return {
    stop: () => {
      void task.destroy();
    },
  };
};
