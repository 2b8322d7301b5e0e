/**
 * The declarative opt-out a Kubernetes user expects: a container whose first process was started
 * with CONTAINER_STATS_ISOLATED=0 in its environment reads the host's files. An explicit write to
 * the control file wins over it (see the README's precedence table).
 *
 * The first process is the container's oldest (cgroup/tasks.ts readOldestProcess: the same one
 * its /proc/uptime starts from). Its environment is fixed at exec, so the answer is kept on the
 * container's record for ANSWER_TTL_MS instead of reading /proc/<pid>/environ on every request.
 */
import path from 'node:path';
import { readBoundedPrefix } from '../host/boundedRead';
import { readOldestProcess } from '../cgroup/tasks';
import type { ContainerRecord } from '../containers/registry';

export const OPT_OUT_ENV = 'CONTAINER_STATS_ISOLATED';
/** How long an answer is reused: a new first process (a restart in place) is seen within it. */
export const ANSWER_TTL_MS = 30_000;
/** An environment can be as long as ARG_MAX allows; a declaration past this is not seen. */
const ENVIRON_MAX_BYTES = 256 * 1024;
/** Processes looked at for the container's first one: bounded work per (uncached) request. */
const MAX_PROCESSES = 4096;

export class EnvOptOut {
  constructor(private readonly procRoot: string) {}

  /** True when the container's first process has CONTAINER_STATS_ISOLATED=0. */
  optedOut(record: ContainerRecord, nowMs: number): boolean {
    const answer = record.envOptOut;
    if (answer && nowMs >= answer.atMs && nowMs - answer.atMs < ANSWER_TTL_MS) return answer.optedOut;
    const optedOut = this.readOptOut(record);
    record.envOptOut = { atMs: nowMs, optedOut };
    return optedOut;
  }

  private readOptOut(record: ContainerRecord): boolean {
    let environ: { text: string; truncated: boolean };
    try {
      const oldest = readOldestProcess(record.location, this.procRoot, MAX_PROCESSES);
      if (oldest === null) return false;
      environ = readBoundedPrefix(path.join(this.procRoot, String(oldest.pid)), 'environ', ENVIRON_MAX_BYTES);
    } catch {
      return false; // the cgroup or process is gone, or not ours to read: no declaration
    }
    const entries = environ.text.split('\0');
    if (environ.truncated) entries.pop(); // cut in the middle: not a whole declaration
    for (const entry of entries) {
      if (entry.startsWith(`${OPT_OUT_ENV}=`)) return entry.slice(OPT_OUT_ENV.length + 1).trim() === '0';
    }
    return false;
  }
}
