/**
 * The message as one attempt sends it: read whole or streamed from the spool, DKIM-signed when the
 * queue says so, or a local failure reply when signing is required and impossible.
 */
import { Readable } from 'node:stream';
import { isFreightError } from '../../common/errors.js';
import { createLogger } from '../../common/log.js';
import { dkimRequestFor } from '../../dkim/signer.js';
import type { OutcomePorts } from '../deliver/index.js';
import type { SpooledMessage } from '../types.js';
import type { EngineDeliverability } from './deliverability.js';
import type { DeliveryQueue } from './queue.js';

const log = createLogger('engine/attempt');

/** Bodies up to this size are read whole for an attempt; larger ones are streamed from the spool. */
const INLINE_BODY_MAX = 1024 * 1024;

export type PreparedBody = { body: Buffer | Readable; size: number } | { localReply: string };

/** The DKIM-Signature field, then the spooled message. */
function prepend(header: string, body: NodeJS.ReadableStream): Readable {
  const inner = body as Readable;
  return Readable.from(
    (async function* () {
      try {
        yield Buffer.from(header, 'binary');
        for await (const chunk of inner) yield chunk as Buffer;
      } finally {
        inner.destroy();
      }
    })(),
  );
}

/** The message as it goes out (signed when the queue says so) and its size; or a local failure reply. */
export async function prepareBody(
  ports: OutcomePorts,
  deliv: EngineDeliverability,
  q: DeliveryQueue,
  msg: SpooledMessage,
): Promise<PreparedBody> {
  // Typical bodies go out as one buffer (one socket write, no stream per attempt); large ones stream.
  const whole = msg.size <= INLINE_BODY_MAX ? await ports.spool.readBody(msg) : null;
  const open = () => (whole ? Readable.from([whole]) : (ports.spool.openBody(msg) as Readable));
  const req = dkimRequestFor(q.settings);
  if (!req) return { body: whole ?? open(), size: msg.size };
  try {
    const sig = await deliv.signer.sign({ id: msg.id, open }, req);
    const size = msg.size + Buffer.byteLength(sig.header, 'binary');
    if (whole) return { body: Buffer.concat([Buffer.from(sig.header, 'binary'), whole]), size };
    return { body: prepend(sig.header, open()), size };
  } catch (err) {
    if (!isFreightError(err) || !err.code.startsWith('DKIM_')) throw err;
    if (q.settings.dkimRequired) return { localReply: `451 4.7.0 local error: ${err.code}: ${err.message}` };
    log.warn('sending unsigned: no DKIM signature could be made', {
      id: msg.id,
      queue: q.key,
      error: err.message,
    });
    return { body: whole ?? open(), size: msg.size };
  }
}
