/** Signalling the running Freight daemons through their pid files (`freight reload`, the API's POST /reload). */
import { pidFilePath, readLivePid } from '../common/daemon.js';
import { DAEMONS } from './supervisor.js';

export interface SignalledDaemon {
  name: string;
  pid: number;
}

/** Send `signal` to every Freight daemon whose pid file names a live process; returns those signalled. */
export function signalDaemons(runDir: string, signal: NodeJS.Signals): SignalledDaemon[] {
  const out: SignalledDaemon[] = [];
  for (const name of DAEMONS) {
    const pid = readLivePid(pidFilePath(runDir, name));
    if (!pid) continue;
    try {
      process.kill(pid, signal);
      out.push({ name, pid });
    } catch (err) {
      // It exited between the liveness check and the signal: nothing left to reload.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  return out;
}
