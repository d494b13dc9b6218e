/**
 * Lifecycle of the private Postfix instance: start, stop, status, check — always with `-c <configDir>`,
 * so the machine's own Postfix (if any) is never touched.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FreightError } from '../common/errors.js';
import type { PostfixLayout } from './layout.js';

const run = promisify(execFile);
const daemonDirectory = '/usr/lib/postfix/sbin';

export interface PostfixCommandResult {
  stdout: string;
  stderr: string;
}

export async function postfixCommand(
  commandDir: string,
  layout: PostfixLayout,
  args: string[],
  tool = 'postfix',
): Promise<PostfixCommandResult> {
  try {
    const { stdout, stderr } = await run(join(commandDir, tool), ['-c', layout.configDir, ...args], {
      timeout: 60_000,
    });
    return { stdout, stderr };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; stdout?: string };
    if (e.code === 'ENOENT') {
      throw new FreightError(
        'POSTFIX_NOT_INSTALLED',
        `${join(commandDir, tool)} not found: install Postfix (scripts/install-postfix.sh)`,
      );
    }
    throw new FreightError(
      'POSTFIX_COMMAND_FAILED',
      `${tool} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`,
      {
        stderr: e.stderr,
      },
    );
  }
}

/** The master process pid, if this instance is running. */
export function masterPid(layout: PostfixLayout): number | null {
  const file = join(layout.queueDir, 'pid', 'master.pid');
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

function recentProblems(layout: PostfixLayout): string[] {
  if (!existsSync(layout.maillog)) return [];
  return readFileSync(layout.maillog, 'utf8')
    .split('\n')
    .slice(-30)
    .filter((l) => /fatal|error/.test(l))
    .map((l) => l.replace(/^.*?postfix\S*\[\d+\]: /, ''));
}

/** Queue directories as postfix-script creates them (owner, group, mode), from Postfix 3.7 on Debian. */
const QUEUE_DIRS: Array<[string, 'postfix' | 'root', 'root' | 'postdrop', number]> = [
  ...[
    'active',
    'bounce',
    'corrupt',
    'defer',
    'deferred',
    'flush',
    'hold',
    'incoming',
    'private',
    'saved',
    'trace',
  ].map((d) => [d, 'postfix', 'root', 0o700] as [string, 'postfix', 'root', number]),
  ['maildrop', 'postfix', 'postdrop', 0o730],
  ['public', 'postfix', 'postdrop', 0o710],
  ['pid', 'root', 'root', 0o755],
];

function idOf(file: string, name: string): number | null {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  return line ? Number(line.split(':')[2]) : null;
}

/** Create the queue directories directly (root only); false if that is not possible here. */
function createQueueDirs(layout: PostfixLayout): boolean {
  if (process.getuid?.() !== 0) return false;
  const uid = { postfix: idOf('/etc/passwd', 'postfix'), root: 0 };
  const gid = { postdrop: idOf('/etc/group', 'postdrop'), root: 0 };
  if (uid.postfix === null || gid.postdrop === null) return false;
  for (const [name, owner, group, mode] of QUEUE_DIRS) {
    const dir = join(layout.queueDir, name);
    mkdirSync(dir, { recursive: true });
    chownSync(dir, uid[owner]!, gid[group]!);
    chmodSync(dir, mode);
  }
  return true;
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

export async function startPostfix(commandDir: string, layout: PostfixLayout): Promise<number> {
  const running = masterPid(layout);
  if (running) {
    throw new FreightError(
      'POSTFIX_RUNNING',
      `Postfix instance ${layout.configDir} is already running (pid ${running})`,
      {
        pid: running,
      },
    );
  }
  try {
    if (existsSync(join(layout.queueDir, 'active')) || createQueueDirs(layout)) {
      // The queue exists: start the master directly (0.3 s) instead of `postfix start`, whose
      // postfix-script checks take ~8 s here; `freight postfix check` runs those checks on demand.
      await run(join(daemonDirectory, 'master'), ['-c', layout.configDir, '-w'], { timeout: 60_000 });
    } else {
      // First start: postfix-script creates the queue directories with the right owners.
      await postfixCommand(commandDir, layout, ['start']);
    }
  } catch (err) {
    // postfix start says nothing useful on the terminal; the reason is in the maillog.
    const fatal = recentProblems(layout);
    if (fatal.length === 0) throw err;
    throw new FreightError('POSTFIX_START_FAILED', `Postfix did not start: ${fatal.join(' | ')}`);
  }
  if (!(await waitFor(() => masterPid(layout) !== null, 10_000))) {
    throw new FreightError('POSTFIX_START_FAILED', `Postfix did not start; see ${layout.maillog}`);
  }
  return masterPid(layout)!;
}

/** Stop the instance and wait until the master and all its children are gone. */
export async function stopPostfix(commandDir: string, layout: PostfixLayout): Promise<void> {
  const pid = masterPid(layout);
  if (!pid) return;
  try {
    await postfixCommand(commandDir, layout, ['stop']);
  } catch {
    process.kill(pid, 'SIGTERM');
  }
  if (!(await waitFor(() => masterPid(layout) === null, 15_000))) {
    await postfixCommand(commandDir, layout, ['abort']).catch(() => undefined);
    await waitFor(() => masterPid(layout) === null, 5_000);
  }
}

export async function reloadPostfix(commandDir: string, layout: PostfixLayout): Promise<void> {
  await postfixCommand(commandDir, layout, ['reload']);
}

/** `postfix check`: its complaints go to the maillog, so return the log lines it added. */
export async function checkPostfix(commandDir: string, layout: PostfixLayout): Promise<string[]> {
  const before = existsSync(layout.maillog) ? readFileSync(layout.maillog, 'utf8').length : 0;
  const { stdout, stderr } = await postfixCommand(commandDir, layout, ['check']);
  await new Promise((r) => setTimeout(r, 200));
  const after = existsSync(layout.maillog) ? readFileSync(layout.maillog, 'utf8').slice(before) : '';
  return [...`${stdout}${stderr}`.split('\n'), ...after.split('\n')].filter((l) =>
    /warning|fatal|error/i.test(l),
  );
}
