/**
 * Whether a task lives in the pid namespace our procfs belongs to (the host's, under hostPID).
 * `NSpid` in /proc/<pid>/status lists the task's id in that namespace and in every nested one,
 * so exactly one entry means "not in a child pid namespace". Unlike comparing /proc/<pid>/ns/pid
 * links this needs no ptrace access (readlink of /proc/1/ns/pid is refused in some sandboxes
 * even to root).
 */
import path from 'node:path';
import { readBoundedText, TASK_FILE_MAX_BYTES } from '../host/boundedRead';

export function inHostPidNamespace(procRoot: string, pid: number): boolean {
  if (pid <= 0) return false;
  let status: string;
  try {
    status = readBoundedText(path.join(procRoot, String(pid)), 'status', TASK_FILE_MAX_BYTES);
  } catch {
    return false;
  }
  const line = /^NSpid:\s*(.*)$/m.exec(status);
  if (!line) return false;
  return line[1].trim().split(/\s+/).length === 1;
}
