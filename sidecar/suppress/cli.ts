/** `freight suppress add|remove|list|check`, against the accounting database. */
import { parseArgs } from 'node:util';
import { DB_OPTIONS, openAcct } from '../acct/cli-db.js';
import type { Command } from '../common/command.js';
import { errorMessage } from '../common/errors.js';
import { fail, printJson, printRows } from '../common/output.js';
import { parseDuration } from '../config/units.js';
import { type SuppressionEntry, SuppressionList, type SuppressionSource } from './list.js';

function show(e: SuppressionEntry) {
  return {
    entry: e.key,
    kind: e.kind,
    source: e.source,
    reason: e.reason,
    added: new Date(e.createdAt).toISOString(),
    expires: e.expiresAt === null ? null : new Date(e.expiresAt).toISOString(),
  };
}

async function withList(
  argv: string[],
  extra: Record<string, { type: 'string' | 'boolean' }>,
  fn: (v: Record<string, string | boolean | undefined>, pos: string[], list: SuppressionList) => number,
): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...DB_OPTIONS, ...extra },
      allowPositionals: true,
    });
    const v = values as Record<string, string | boolean | undefined>;
    const store = openAcct({ config: v.config as string | undefined, db: v.db as string | undefined }, false);
    try {
      return fn(v, positionals, SuppressionList.open(store));
    } finally {
      store.close();
    }
  } catch (err) {
    return fail(errorMessage(err));
  }
}

export const commands: Command[] = [
  {
    name: 'suppress add',
    summary: 'suppress an address or a whole domain',
    usage:
      'freight suppress add <address|domain> [--reason TEXT] [--source manual|bounce|complaint] [--expires 30d] [--config FILE | --db PATH]',
    run: (argv) =>
      withList(
        argv,
        { reason: { type: 'string' }, source: { type: 'string' }, expires: { type: 'string' } },
        (v, pos, list) => {
          if (pos.length !== 1) return fail('usage: freight suppress add <address|domain> [--reason TEXT]');
          const source = (v.source as string | undefined) ?? 'manual';
          if (!['manual', 'bounce', 'complaint'].includes(source))
            return fail('--source must be manual, bounce or complaint');
          const target = pos[0]!;
          const expiresAt = typeof v.expires === 'string' ? Date.now() + parseDuration(v.expires) : null;
          const e = list.add({
            ...(target.includes('@') ? { address: target } : { domain: target }),
            reason: (v.reason as string | undefined) ?? 'added by operator',
            source: source as SuppressionSource,
            expiresAt,
          });
          if (v.json) printJson(show(e));
          else process.stdout.write(`suppressed ${e.kind} ${e.key}\n`);
          return 0;
        },
      ),
  },
  {
    name: 'suppress remove',
    summary: 'remove an address or domain from the suppression list',
    usage: 'freight suppress remove <address|domain> [--config FILE | --db PATH]',
    run: (argv) =>
      withList(argv, {}, (_v, pos, list) => {
        if (pos.length !== 1) return fail('usage: freight suppress remove <address|domain>');
        if (!list.remove(pos[0]!)) return fail(`${pos[0]} is not on the suppression list`);
        process.stdout.write(`removed ${pos[0]!.toLowerCase()}\n`);
        return 0;
      }),
  },
  {
    name: 'suppress list',
    summary: 'list suppression entries, newest first',
    usage:
      'freight suppress list [--source bounce|manual|complaint] [--limit N] [--json] [--config FILE | --db PATH]',
    run: (argv) =>
      withList(argv, { source: { type: 'string' }, limit: { type: 'string' } }, (v, _pos, list) => {
        const rows = list.list({
          source: v.source as SuppressionSource | undefined,
          limit: typeof v.limit === 'string' ? Number(v.limit) : 0,
        });
        printRows(rows.map(show), { json: v.json === true });
        return 0;
      }),
  },
  {
    name: 'suppress check',
    summary: 'is this address suppressed, and why? (exit 0 = suppressed, 1 = not)',
    usage: 'freight suppress check <address> [--json] [--config FILE | --db PATH]',
    run: (argv) =>
      withList(argv, {}, (v, pos, list) => {
        if (pos.length !== 1) return fail('usage: freight suppress check <address>');
        const e = list.check(pos[0]!);
        if (v.json) printJson(e ? { suppressed: true, ...show(e) } : { suppressed: false });
        else
          process.stdout.write(
            e ? `suppressed: ${e.kind} ${e.key} (${e.source}: ${e.reason})\n` : 'not suppressed\n',
          );
        return e ? 0 : 1;
      }),
  },
];
