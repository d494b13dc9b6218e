/**
 * Where a running `freight up` can be found without its config: `freight up` leaves a record (its pid
 * and the config file it runs) in a directory that does not depend on any config, so `freight down`,
 * `show` and `reload` typed in another terminal reach the stack that `npm run up` started with the
 * example config. One file per stack, removed when the stack stops; a record whose pid is gone is stale
 * and ignored.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface StackRecord {
  pid: number;
  /** Absolute path of the config file the stack runs. */
  config: string;
  startedAt: number;
}

/** `FREIGHT_STACK_DIR`, else /run/freight-stacks for root, else a per-user folder in the temp dir. */
export function stackRecordDir(): string {
  if (process.env.FREIGHT_STACK_DIR) return process.env.FREIGHT_STACK_DIR;
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? '/run/freight-stacks' : join(tmpdir(), `freight-stacks-${uid}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseRecord(text: string): StackRecord | null {
  try {
    const r = JSON.parse(text) as Partial<StackRecord>;
    if (!Number.isInteger(r.pid) || typeof r.config !== 'string') return null;
    return { pid: r.pid as number, config: r.config, startedAt: Number(r.startedAt) || 0 };
  } catch {
    return null;
  }
}

/** Record this process as a stack running `config`; the returned function removes the record. */
export function recordStack(config: string): () => void {
  const dir = stackRecordDir();
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${process.pid}.json`);
  const record: StackRecord = { pid: process.pid, config, startedAt: Date.now() };
  writeFileSync(path, `${JSON.stringify(record)}\n`);
  return () => rmSync(path, { force: true });
}

/** Stacks whose process is alive, oldest first. */
export function liveStacks(): StackRecord[] {
  const dir = stackRecordDir();
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const records: StackRecord[] = [];
  for (const name of names) {
    let text: string;
    try {
      text = readFileSync(join(dir, name), 'utf8');
    } catch {
      continue; // removed by its stack between readdir and read
    }
    const r = parseRecord(text);
    if (r && alive(r.pid)) records.push(r);
  }
  return records.sort((a, b) => a.startedAt - b.startedAt);
}
