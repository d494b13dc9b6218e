/**
 * The two fsyncs of a commit round, each where a fault can be injected: the data segments first, then
 * the journal (a durable `A` record always has a durable body).
 */
import { FAULTS, faultPoint } from '../fault-inject.js';
import type { SpoolJournal } from './journal.js';
import type { BodySegments } from './segments.js';

export function syncBodies(segments: BodySegments): Promise<void> {
  if (FAULTS) {
    try {
      faultPoint('body-fsync');
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return segments.sync();
}

/** `added`: the round appended `A` records. */
export function syncJournal(journal: SpoolJournal, added: boolean): Promise<void> {
  if (FAULTS && added) {
    try {
      journal.flush();
      faultPoint('journal-append');
      faultPoint('journal-fsync');
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return journal.sync();
}

/** The promise's error, or null once it resolves. */
export function errorOf(p: Promise<void>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}
