/** Where the private Postfix instance keeps its files, all below `postfix-dir`. */
import { join } from 'node:path';

export interface PostfixLayout {
  root: string;
  /** config_directory: main.cf, master.cf, transport tables. Pass it as `-c` to every Postfix tool. */
  configDir: string;
  queueDir: string;
  dataDir: string;
  logDir: string;
  maillog: string;
}

/** `maillog` is where Postfix logs (`maillog_file`): the file the tailer follows, from `maillog`. */
export function postfixLayout(root: string, maillog = join(root, 'log', 'maillog')): PostfixLayout {
  return {
    root,
    configDir: join(root, 'etc'),
    queueDir: join(root, 'queue'),
    dataDir: join(root, 'data'),
    logDir: join(root, 'log'),
    maillog,
  };
}
