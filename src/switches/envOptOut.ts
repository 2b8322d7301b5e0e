/**
 * The declarative opt-out a Kubernetes user expects: a container whose first process was started
 * with CONTAINER_STATS_ISOLATED=0 in its environment reads the host's files. An explicit write to
 * the control file wins over it (see the README's precedence table).
 *
 * The first process is the container's oldest (cgroup/tasks.ts readOldestProcess: the same one
 * its /proc/uptime starts from). Its environment is fixed at exec, so the answer is kept on the
 * container's record for ANSWER_TTL_MS instead of reading /proc/<pid>/environ on every request.
 *
 * That read can be made to never end by the process read (environRead.ts), so it goes through an
 * EnvironSource (environReader.ts: a thread, waited for a bounded time). A process whose read did
 * not end is remembered on the record as hung, and not read again until that read has returned.
 */
import { readOldestProcess } from '../cgroup/tasks';
import type { ContainerRecord, HungProcess } from '../containers/registry';
import { RateLimitedLog, type Logger } from '../log';
import type { EnvironSource } from './environReader';

/** How long an answer is reused: a new first process (a restart in place) is seen within it. */
export const ANSWER_TTL_MS = 30_000;
/** Processes looked at for the container's first one: bounded work per (uncached) request. */
const MAX_PROCESSES = 4096;
const LOG_INTERVAL_MS = 60_000;

export interface EnvOptOutOptions {
  procRoot: string;
  environ: EnvironSource;
  logger?: Logger;
  /** A read went unanswered: 'timed-out' (the process kept it), 'no-thread' (none free to read). */
  onUnanswered?: (why: 'timed-out' | 'no-thread') => void;
  /** The bound the source waits, for the log. */
  timeoutMs?: number;
}

export class EnvOptOut {
  private readonly rateLimited = new RateLimitedLog(LOG_INTERVAL_MS);

  constructor(private readonly options: EnvOptOutOptions) {}

  /** True when the container's first process has CONTAINER_STATS_ISOLATED=0. */
  optedOut(record: ContainerRecord, nowMs: number): boolean {
    const answer = record.envOptOut;
    if (answer && nowMs >= answer.atMs && nowMs - answer.atMs < ANSWER_TTL_MS) return answer.optedOut;
    const { optedOut, hung, keep } = this.readOptOut(record, nowMs);
    if (keep) record.envOptOut = { atMs: nowMs, optedOut, hung };
    return optedOut;
  }

  /** The answer, and whether it is kept for ANSWER_TTL_MS (not when no thread could read yet). */
  private readOptOut(record: ContainerRecord, nowMs: number): { optedOut: boolean; hung: HungProcess | null; keep: boolean } {
    const none = { optedOut: false, hung: null, keep: true };
    let oldest: HungProcess | null;
    try {
      oldest = readOldestProcess(record.location, this.options.procRoot, MAX_PROCESSES);
    } catch {
      return none; // the cgroup is gone: no declaration
    }
    if (oldest === null) return none;
    const { environ } = this.options;
    // A read of this process is still stuck (this record's, or an earlier record's of the same
    // container): another would stick too. Once that read returns, it is read again.
    if (environ.stuckOn(oldest.pid)) return { optedOut: false, hung: oldest, keep: true };
    const answer = environ.read(oldest.pid);
    switch (answer.kind) {
      case 'read':
        return { optedOut: answer.optedOut, hung: null, keep: true };
      case 'failed':
        return none; // gone, or not ours to read
      case 'timed-out':
        this.options.onUnanswered?.('timed-out');
        if (this.rateLimited.allow(`hung:${record.key}`, nowMs)) {
          this.options.logger?.warn({ container: record.key, pid: oldest.pid, timeoutMs: this.options.timeoutMs, stuckThreads: environ.stuckCount },
            "env opt-out: the container's first process kept its environment from being read: no declaration assumed (the container stays isolated), not read again until that read returns");
        }
        return { optedOut: false, hung: oldest, keep: true };
      case 'unavailable':
        this.options.onUnanswered?.('no-thread');
        if (answer.why === 'stuck-bound' && this.rateLimited.allow('stuck-bound', nowMs)) {
          this.options.logger?.error({ container: record.key, pid: oldest.pid, stuckThreads: environ.stuckCount },
            'env opt-out: every environ reader thread is stuck in a read some container keeps from ending: CONTAINER_STATS_ISOLATED is not read (containers stay isolated) until one returns');
        }
        // A thread still starting answers within ms: read at the next request, not in 30 s.
        return { optedOut: false, hung: null, keep: answer.why !== 'starting' };
      default:
        return none;
    }
  }
}
