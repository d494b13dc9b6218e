/**
 * Cork a socket on the first write of a tick and uncork on the next, so writes issued together leave
 * in one syscall. smtp-server writes every reply line on its own (one per LMTP recipient after DATA, one
 * per pipelined command), and nodemailer every command and the body apart from its terminator; on
 * loopback and in VMs each write that wakes the peer costs more CPU than the rest of the command.
 */
import type net from 'node:net';

export function coalesceWrites(socket: net.Socket): void {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return (write as (...a: unknown[]) => boolean).apply(socket, args);
  }) as typeof socket.write;
}
