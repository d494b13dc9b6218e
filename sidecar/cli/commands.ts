/**
 * Every `freight` command, by the module that implements it. Modules load lazily so that a command only
 * pays for the dependencies it uses.
 */
import type { Command } from '../common/command.js';

export interface CommandModule {
  names: string[];
  load: () => Promise<{ commands: Command[] }>;
}

export const COMMAND_MODULES: CommandModule[] = [
  { names: ['up', 'down', 'reload'], load: () => import('../stack/cli.js') },
  { names: ['postfix render', 'postfix check'], load: () => import('../postfix/cli.js') },
  { names: ['config check', 'config show'], load: () => import('../config/cli.js') },
  { names: ['ramp', 'ramp set', 'ramp show', 'ramp render'], load: () => import('../ramp/cli.js') },
  { names: ['policy', 'policy stats'], load: () => import('../policy/cli.js') },
  { names: ['api'], load: () => import('../api/cli.js') },
  { names: ['engine', 'show', 'pause', 'resume', 'schedule'], load: () => import('../engine/cli.js') },
  { names: ['tailer', 'acct import'], load: () => import('../tailer/cli.js') },
  { names: ['acct summary', 'acct list', 'acct export', 'acct trail'], load: () => import('../acct/cli.js') },
  { names: ['acct prune', 'acct quarantine'], load: () => import('../acct/cli-upkeep.js') },
  { names: ['classify'], load: () => import('../classify/cli.js') },
  {
    names: ['suppress add', 'suppress remove', 'suppress list', 'suppress check'],
    load: () => import('../suppress/cli.js'),
  },
];
