/**
 * The running engine's control channel: a unix socket `<run-dir>/engine.sock`, one JSON request per line
 * and one JSON response per line (control/protocol.ts). `freight show|pause|resume|schedule` are its
 * clients. The socket is created mode 0600-ish by the umask of the engine's user; only that user (and
 * root) may steer the engine.
 */
import fs from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { errorMessage, FreightError, isFreightError } from '../../common/errors.js';
import { createLogger, type Logger } from '../../common/log.js';
import { controlSocketPath } from './client.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

const OPS = new Set(['status', 'queues', 'domains', 'vmtas', 'pause', 'resume', 'schedule', 'reload']);

/** Validate a decoded request; malformed input gets an error reply, never a crash. */
export function parseRequest(line: string): ControlRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new FreightError('ENGINE_CONTROL_BAD_REQUEST', 'request is not JSON');
  }
  const o = v as Record<string, unknown>;
  if (!o || typeof o !== 'object' || typeof o.op !== 'string' || !OPS.has(o.op)) {
    throw new FreightError('ENGINE_CONTROL_BAD_REQUEST', `unknown op ${JSON.stringify(o?.op)}`);
  }
  if (
    (o.op === 'pause' || o.op === 'resume' || o.op === 'schedule') &&
    (typeof o.domain !== 'string' || !o.domain)
  ) {
    throw new FreightError('ENGINE_CONTROL_BAD_REQUEST', `${o.op} needs a domain`);
  }
  if (o.vmta !== undefined && typeof o.vmta !== 'string') {
    throw new FreightError('ENGINE_CONTROL_BAD_REQUEST', 'vmta must be a string');
  }
  return o as unknown as ControlRequest;
}

export class ControlServer {
  private readonly server: net.Server;
  readonly path: string;
  private readonly log: Logger;

  constructor(runDir: string, handler: ControlHandler, log?: Logger) {
    this.path = controlSocketPath(runDir);
    this.log = log ?? createLogger('engine/control');
    this.server = net.createServer((socket) => {
      let buf = '';
      socket.setEncoding('utf8');
      socket.on('error', () => socket.destroy());
      socket.on('data', (chunk: string) => {
        buf += chunk;
        if (buf.length > 65_536) {
          socket.destroy();
          return;
        }
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          void this.answer(line, handler).then((res) => socket.write(`${JSON.stringify(res)}\n`));
          nl = buf.indexOf('\n');
        }
      });
    });
  }

  private async answer(line: string, handler: ControlHandler): Promise<ControlResponse> {
    try {
      return { ok: true, result: await handler(parseRequest(line)) };
    } catch (err) {
      const code = isFreightError(err) ? err.code : 'ENGINE_UNAVAILABLE';
      if (!isFreightError(err)) this.log.error('control request failed', { error: errorMessage(err) });
      return { ok: false, code, error: errorMessage(err) };
    }
  }

  async listen(): Promise<void> {
    fs.mkdirSync(join(this.path, '..'), { recursive: true });
    // A socket file left by a killed engine would make listen fail with EADDRINUSE.
    fs.rmSync(this.path, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.path, () => resolve());
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      fs.rmSync(this.path, { force: true });
    });
  }
}
