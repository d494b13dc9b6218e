/**
 * Where a spooled message's bytes are: a range of a data segment, or (spools from before data
 * segments) a file of its own, which is unlinked when the message goes.
 */
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { Logger } from '../../common/log.js';
import { LEGACY_BODY, type SpoolEntry } from './entry.js';
import { legacyBodyPath } from './recover.js';
import type { BodySegments } from './segments.js';

export function readEntryBody(dir: string, segments: BodySegments, entry: SpoolEntry): Promise<Buffer> {
  if (entry.seg === LEGACY_BODY) return fs.promises.readFile(legacyBodyPath(dir, entry.id));
  return segments.read({ seg: entry.seg, off: entry.off }, entry.size);
}

export function openEntryBody(dir: string, segments: BodySegments, entry: SpoolEntry): Readable {
  if (entry.seg === LEGACY_BODY) return fs.createReadStream(legacyBodyPath(dir, entry.id));
  return segments.stream({ seg: entry.seg, off: entry.off }, entry.size);
}

export function unlinkLegacyBody(dir: string, entry: SpoolEntry, log: Logger): void {
  fs.unlink(legacyBodyPath(dir, entry.id), (err) => {
    if (err && err.code !== 'ENOENT')
      log.warn('cannot unlink spooled body', { id: entry.id, error: err.message });
  });
}
