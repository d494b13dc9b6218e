/**
 * The DSN outbox, `<spool>/dsn/`: one file per DSN waiting for Postfix. The first line names the envelope
 * recipient; the DSN message follows. A file is written to a temporary name, fsync'd, renamed and its
 * directory fsync'd, so a file under its final name is always whole. A file that cannot be read or parsed
 * is moved to `dsn/corrupt/` for the operator (as Postfix does with its `corrupt` queue), never deleted.
 */
import fs from 'node:fs';
import { basename, join } from 'node:path';
import { errorMessage, FreightError } from '../../common/errors.js';
import { spoolFsync } from '../spool/index.js';

const ENVELOPE_PREFIX = 'X-Freight-Envelope-To: ';

export interface OutboxMessage {
  /** Envelope recipient: the original sender. */
  to: string;
  /** The DSN as it goes to Postfix. */
  raw: Buffer;
}

export class DsnOutbox {
  readonly dir: string;
  readonly corruptDir: string;
  private seq = 0;

  constructor(spoolDir: string) {
    this.dir = join(spoolDir, 'dsn');
    this.corruptDir = join(this.dir, 'corrupt');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  /** Files left from before a restart; half-written ones (a crash mid-write) are deleted. */
  scan(): string[] {
    const out: string[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (name.endsWith('.tmp')) fs.rmSync(join(this.dir, name), { force: true, recursive: true });
      else if (name.endsWith('.eml')) out.push(join(this.dir, name));
    }
    return out;
  }

  /** Write one DSN durably; resolves with its file. */
  async write(id: string, to: string, dsn: Buffer): Promise<string> {
    const name = `${id}-${Date.now().toString(36)}${(this.seq++).toString(36)}.eml`;
    const tmp = join(this.dir, `${name}.tmp`);
    const fh = await fs.promises.open(tmp, 'w');
    try {
      await fh.write(`${ENVELOPE_PREFIX}${to}\r\n`);
      await fh.write(dsn);
      await fh.sync();
    } finally {
      await fh.close();
    }
    const file = join(this.dir, name);
    await fs.promises.rename(tmp, file);
    await spoolFsync.syncDir(this.dir);
    return file;
  }

  /**
   * Read one outbox file. Rejects with the system error when it cannot be read (the caller retries),
   * and with DSN_OUTBOX_CORRUPT when its content is not an outbox file.
   */
  async read(file: string): Promise<OutboxMessage> {
    const raw = await fs.promises.readFile(file);
    const nl = raw.indexOf('\r\n');
    const first = nl >= 0 ? raw.subarray(0, nl).toString('utf8') : '';
    if (!first.startsWith(ENVELOPE_PREFIX) || nl + 2 >= raw.length)
      throw new FreightError('DSN_OUTBOX_CORRUPT', `${file}: no envelope line or no message`);
    return { to: first.slice(ENVELOPE_PREFIX.length), raw: raw.subarray(nl + 2) };
  }

  /** Move a file to `dsn/corrupt/`; resolves with its new path. */
  async moveAside(file: string): Promise<string> {
    fs.mkdirSync(this.corruptDir, { recursive: true });
    const name = basename(file);
    const to = join(
      this.corruptDir,
      fs.existsSync(join(this.corruptDir, name)) ? `${name}.${Date.now()}` : name,
    );
    try {
      await fs.promises.rename(file, to);
    } catch (err) {
      throw new FreightError('DSN_OUTBOX_MOVE', `cannot move ${file} aside: ${errorMessage(err)}`);
    }
    await spoolFsync.syncDir(this.corruptDir);
    await spoolFsync.syncDir(this.dir);
    return to;
  }

  /** The DSN is with Postfix (or was refused for good). */
  remove(file: string): void {
    fs.rmSync(file, { force: true });
  }
}
