/** User and system CPU of a process so far, ms: /proc/<pid>/stat fields 14 and 15, in 10 ms clock ticks. */
import { readFileSync } from 'node:fs';

export function processCpu(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 };
}
