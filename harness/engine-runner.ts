/**
 * Runs one of the engine's CLI commands exactly as `freight` does (same Command objects), for tests and
 * benches that spawn them as child processes before/without the main CLI:
 * `node --import tsx harness/engine-runner.ts engine --config FILE`, `… show queues --json --config F`.
 */
import { commands } from '../sidecar/engine/cli.js';

const [name, ...rest] = process.argv.slice(2);
const cmd = commands.find((c) => c.name === name);
if (!cmd) {
  process.stderr.write(`engine-runner: unknown command ${name}\n`);
  process.exitCode = 64;
} else {
  cmd.run(rest).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`engine-runner: ${String(err)}\n`);
      process.exitCode = 70;
    },
  );
}
