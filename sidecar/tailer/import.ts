/**
 * `freight acct import FILE…`: historical maillogs (plain or .gz) into the accounting database. Rows carry
 * content dedupe keys, so importing a file twice — or a rotated file the live tailer already read — adds
 * nothing. Files are read in the order given with one correlation state, so a message whose lines span
 * `maillog.2.gz maillog.1` is joined when they are listed oldest first.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import type { AcctStore } from '../acct/store.js';
import { BounceClassifier, type OperatorRule } from '../classify/classifier.js';
import { FreightError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import type { HostPort } from '../config/model.js';
import { makeSuppressor } from './daemon.js';
import { Ingest, type IngestStats } from './ingest.js';
import { TailerStore } from './offset-store.js';

export interface ImportOptions {
  timeZone: string | null;
  engine: HostPort | null;
  operatorRules?: OperatorRule[];
  /** Called as bytes are read (of the file on disk, compressed for .gz). */
  onProgress?: (file: string, done: number, total: number) => void;
  batchRows?: number;
}

export interface ImportResult {
  files: number;
  bytes: number;
  stats: IngestStats;
  /** Rows newly written (rows − inserted − quarantined were already there). */
  inserted: number;
  /** Rows the database refused, kept in acct_quarantine (`freight acct quarantine`). */
  quarantined: number;
}

export async function importLogs(
  store: AcctStore,
  files: string[],
  opts: ImportOptions,
): Promise<ImportResult> {
  const log = createLogger('tailer/import');
  const tstore = new TailerStore(store, 'import', makeSuppressor(store, log), 'import');
  // A bulk load touches the unique and secondary indexes all over: a larger page cache saves re-reads.
  store.db.pragma('cache_size = -65536');
  const ingest = new Ingest({
    timeZone: opts.timeZone,
    classifier: BounceClassifier.load({ operatorRules: opts.operatorRules ?? [] }),
    engine: opts.engine,
  });
  const batchRows = opts.batchRows ?? 20_000;
  let inserted = 0;
  let quarantined = 0;
  let bytes = 0;
  const flush = () => {
    const { rows, suppress } = ingest.take();
    if (rows.length === 0) return;
    const r = tstore.commit({ rows, suppress, upserts: [], deletes: [], position: null });
    inserted += r.inserted;
    quarantined += r.quarantined;
  };
  for (const file of files) {
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(file);
    } catch (err) {
      throw new FreightError('TAILER_IMPORT_FILE', `cannot read ${file}: ${(err as Error).message}`, {
        file,
      });
    }
    // Year-less stamps: a file's last line was written around its mtime.
    ingest.resetClock(st.mtimeMs);
    const raw = createReadStream(file, { highWaterMark: 1 << 20 });
    const input = file.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
    raw.on('error', (err) => input.destroy(err));
    // A StringDecoder keeps multi-byte characters split across chunks intact without re-copying chunks.
    const decoder = new StringDecoder('utf8');
    let partial = '';
    try {
      for await (const data of input as AsyncIterable<Buffer>) {
        const text = partial + decoder.write(data);
        const last = text.lastIndexOf('\n');
        if (last < 0) {
          partial = text;
          continue;
        }
        ingest.text(text.slice(0, last));
        partial = text.slice(last + 1);
        if (ingest.out.length >= batchRows) flush();
        opts.onProgress?.(file, raw.bytesRead, st.size);
      }
    } catch (err) {
      throw new FreightError('TAILER_IMPORT_FILE', `cannot read ${file}: ${(err as Error).message}`, {
        file,
      });
    }
    partial += decoder.end();
    if (partial.length > 0) ingest.text(partial);
    flush();
    bytes += st.size;
    opts.onProgress?.(file, st.size, st.size);
  }
  return { files: files.length, bytes, stats: ingest.stats, inserted, quarantined };
}
