/**
 * A policy protocol client (what smtpd does): one connection, one request at a time. Used by the
 * benchmark and tests, and handy for probing a running daemon.
 */
import net from 'node:net';
import { FreightError } from '../common/errors.js';

export type PolicyTarget = { host: string; port: number } | { path: string };

export class PolicyClient {
  private buf = '';
  private waiting: { resolve: (action: string) => void; reject: (err: Error) => void } | null = null;
  private closedError: Error | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (d: string) => {
      this.buf += d;
      const end = this.buf.indexOf('\n\n');
      if (end < 0 || !this.waiting) return;
      const reply = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      const w = this.waiting;
      this.waiting = null;
      w.resolve(reply.startsWith('action=') ? reply.slice(7) : reply);
    });
    const fail = (err: Error) => {
      this.closedError = err;
      const w = this.waiting;
      this.waiting = null;
      w?.reject(err);
    };
    socket.on('error', fail);
    socket.on('close', () =>
      fail(new FreightError('POLICY_CLIENT_CLOSED', 'policy server closed the connection')),
    );
  }

  static connect(target: PolicyTarget): Promise<PolicyClient> {
    return new Promise((resolve, reject) => {
      const socket = 'path' in target ? net.connect({ path: target.path }) : net.connect(target);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new PolicyClient(socket));
      });
    });
  }

  /** Send one request (attributes in order) and resolve with the action text (without `action=`). */
  ask(attrs: Record<string, string | number>): Promise<string> {
    let text = '';
    for (const [k, v] of Object.entries(attrs)) text += `${k}=${v}\n`;
    return this.askRaw(`${text}\n`);
  }

  askRaw(text: string): Promise<string> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.waiting) return Promise.reject(new FreightError('POLICY_CLIENT_BUSY', 'one request at a time'));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(text);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
