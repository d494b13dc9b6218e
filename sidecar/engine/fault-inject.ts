/**
 * Fault injection for crash tests: `FREIGHT_FAULT=<point>[:<action>[:<nth>]]`, read once at start.
 * At the nth pass (default 1) through the named durability point the engine either dies at once
 * (`kill`, SIGKILL to itself: nothing is flushed, as in a real crash) or the I/O there fails (`eio`,
 * `enospc`). Call sites test the constant `FAULTS` first, so an engine without the variable pays one
 * branch on a constant.
 */
import { FreightError } from '../common/errors.js';
import { createLogger } from '../common/log.js';

export const FAULT_POINTS = [
  /** A message body was appended to its data segment (not yet fsync'd, no journal record). */
  'body-write',
  /** The data segments are fsync'd for a commit round. */
  'body-fsync',
  /** A round's `A` records reached the kernel, before their fsync (intake has not answered). */
  'journal-append',
  /** The journal is fsync'd for a commit round. */
  'journal-fsync',
  /** Intake answered 250 for a message. */
  'intake-250',
  /** A remote MTA accepted a recipient; its outcome record is not written yet. */
  'remote-250',
] as const;

export type FaultPoint = (typeof FAULT_POINTS)[number];
type FaultAction = 'kill' | 'eio' | 'enospc';

interface FaultSpec {
  point: FaultPoint;
  action: FaultAction;
  nth: number;
  passes: number;
}

function parse(raw: string | undefined): FaultSpec | null {
  if (!raw) return null;
  const [point, action = 'kill', nth = '1'] = raw.split(':');
  if (!(FAULT_POINTS as readonly string[]).includes(point ?? '')) {
    throw new FreightError('FAULT_SPEC', `FREIGHT_FAULT: unknown point ${JSON.stringify(point)}`);
  }
  if (action !== 'kill' && action !== 'eio' && action !== 'enospc') {
    throw new FreightError('FAULT_SPEC', `FREIGHT_FAULT: unknown action ${JSON.stringify(action)}`);
  }
  const n = Number(nth);
  if (!Number.isInteger(n) || n < 1) throw new FreightError('FAULT_SPEC', `FREIGHT_FAULT: bad count ${nth}`);
  return { point: point as FaultPoint, action, nth: n, passes: 0 };
}

const spec = parse(process.env.FREIGHT_FAULT);

/** True only when FREIGHT_FAULT is set; test it before calling `faultPoint`. */
export const FAULTS = spec !== null;

if (spec) createLogger('engine/fault').warn('fault injection armed', { ...spec });

/** An I/O error shaped like the one Node raises, so callers handle it as they would the real one. */
function ioError(action: 'eio' | 'enospc', point: FaultPoint): NodeJS.ErrnoException {
  const code = action === 'eio' ? 'EIO' : 'ENOSPC';
  const err: NodeJS.ErrnoException = new Error(`${code}: injected fault at ${point}`);
  err.code = code;
  err.errno = action === 'eio' ? -5 : -28;
  err.syscall = point.endsWith('fsync') ? 'fsync' : 'write';
  return err;
}

/** Pass durability point `point`: dies or throws there if FREIGHT_FAULT says so, else returns. */
export function faultPoint(point: FaultPoint): void {
  if (spec === null || spec.point !== point) return;
  if (++spec.passes !== spec.nth) return;
  if (spec.action === 'kill') process.kill(process.pid, 'SIGKILL');
  else throw ioError(spec.action, point);
}
