/**
 * The contract every `freight` subcommand implements. Each component owns a `cli.ts` that exports
 * its commands; `commands.ts` lists them so `freight --help` can show every one without loading them.
 */
export interface Command {
  /** Words after `freight`, e.g. `acct summary` or `engine`. */
  name: string;
  /** One line for `freight --help`. */
  summary: string;
  /** Full usage text for `freight <name> --help`. */
  usage: string;
  /** Returns the process exit code. `argv` is what follows the command words. */
  run(argv: string[]): Promise<number>;
}
