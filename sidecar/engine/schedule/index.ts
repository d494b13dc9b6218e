/**
 * The delivery scheduler, as the daemon uses it: per-(domain, vmta) queues, their limits and the
 * deliverability state, behind the scheduler port intake submits to and the operator's controls.
 */
export { createScheduler, type Scheduler } from './scheduler.js';
