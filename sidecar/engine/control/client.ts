/**
 * The client end of the engine's control channel (control/server.ts): one request, one response, over
 * `<run-dir>/engine.sock`. The CLI and the API use it; neither loads the engine to ask it something.
 */
import net from 'node:net';
import { join } from 'node:path';
import { FreightError } from '../../common/errors.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

export function controlSocketPath(runDir: string): string {
  return join(runDir, 'engine.sock');
}

/** One request to a running engine. Throws ENGINE_UNAVAILABLE when it does not answer, the reason in the message. */
export function controlRequest(runDir: string, req: ControlRequest, timeoutMs = 10_000): Promise<unknown> {
  const path = controlSocketPath(runDir);
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new FreightError('ENGINE_UNAVAILABLE', `no answer from the engine on ${path}`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(req)}\n`));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const down = err.code === 'ENOENT' || err.code === 'ECONNREFUSED';
      reject(
        new FreightError(
          'ENGINE_UNAVAILABLE',
          down
            ? `the engine is not running (no control socket at ${path})`
            : `control socket ${path}: ${err.message}`,
        ),
      );
    });
    socket.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      const res = JSON.parse(buf.slice(0, nl)) as ControlResponse;
      if (res.ok) resolve(res.result);
      else reject(new FreightError(res.code, res.error));
    });
  });
}
