/**
 * The declarative opt-out a Kubernetes user expects: a container whose first process was started
 * with CONTAINER_STATS_ISOLATED=0 in its environment reads the host's files. An explicit write to
 * the control file wins over it (see the README's precedence table).
 *
 * The first process is the oldest one in the container's cgroup (smallest start time). Its
 * environment is fixed at exec, so the answer is cached per container for a while instead of
 * reading /proc/<pid>/environ on every request.
 */
import path from 'node:path';
import { TASK_FILE_MAX_BYTES, readBoundedPrefix, readBoundedText } from '../host/boundedRead';

export const OPT_OUT_ENV = 'CONTAINER_STATS_ISOLATED';
const CACHE_MS = 30_000;
/** Answers kept at most (one per container read in the last CACHE_MS). */
const MAX_CACHED = 10_000;
/** An environment can be as long as ARG_MAX allows; a declaration past this is not seen. */
const ENVIRON_MAX_BYTES = 256 * 1024;
/** Processes looked at for the container's first one, and the longest line of a pid list. */
const MAX_PROCESSES = 4096;
const PID_LINE_MAX_BYTES = 11;

interface CachedAnswer {
  optedOut: boolean;
  expiresAtMs: number;
}

export class EnvOptOut {
  private readonly cache = new Map<string, CachedAnswer>();

  constructor(private readonly procRoot: string) {}

  /** True when the container's first process has CONTAINER_STATS_ISOLATED=0. */
  optedOut(key: string, cgroupDir: string | undefined, nowMs: number): boolean {
    const cached = this.cache.get(key);
    if (cached && cached.expiresAtMs > nowMs) return cached.optedOut;
    const optedOut = cgroupDir ? this.readOptOut(cgroupDir) : false;
    if (this.cache.size >= MAX_CACHED) this.dropExpired(nowMs);
    this.cache.set(key, { optedOut, expiresAtMs: nowMs + CACHE_MS });
    return optedOut;
  }

  forget(key: string): void {
    this.cache.delete(key);
  }

  /** Containers come and go: answers past their time are dropped, and all if none is. */
  private dropExpired(nowMs: number): void {
    for (const [key, answer] of this.cache) if (answer.expiresAtMs <= nowMs) this.cache.delete(key);
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
  }

  private readOptOut(cgroupDir: string): boolean {
    const pid = oldestProcess(this.procRoot, cgroupDir);
    if (pid === null) return false;
    let environ: { text: string; truncated: boolean };
    try {
      environ = readBoundedPrefix(path.join(this.procRoot, String(pid)), 'environ', ENVIRON_MAX_BYTES);
    } catch {
      return false; // gone, or not ours to read: no declaration
    }
    const entries = environ.text.split('\0');
    if (environ.truncated) entries.pop(); // cut in the middle: not a whole declaration
    for (const entry of entries) {
      if (entry.startsWith(`${OPT_OUT_ENV}=`)) return entry.slice(OPT_OUT_ENV.length + 1).trim() === '0';
    }
    return false;
  }
}

/**
 * The pid with the smallest start time among the cgroup's processes; null if none readable.
 * Looks at the first MAX_PROCESSES listed only, so the work per request stays bounded (v1
 * lists pids sorted, so a container's init, usually its lowest pid, is among them).
 */
export function oldestProcess(procRoot: string, cgroupDir: string): number | null {
  let listed: { text: string; truncated: boolean };
  try {
    listed = readBoundedPrefix(cgroupDir, 'cgroup.procs', MAX_PROCESSES * PID_LINE_MAX_BYTES);
  } catch {
    return null;
  }
  const lines = listed.text.split('\n');
  if (listed.truncated) lines.pop(); // the last pid may be cut in the middle
  let best: number | null = null;
  let bestStart = 0n;
  for (const line of lines.slice(0, MAX_PROCESSES)) {
    if (!/^\d{1,10}$/.test(line)) continue;
    const start = startTicks(procRoot, line);
    if (start === null) continue;
    if (best === null || start < bestStart) {
      best = Number(line);
      bestStart = start;
    }
  }
  return best;
}

/** Field 22 of /proc/<pid>/stat (start time, clock ticks since boot); null if gone or garbled. */
function startTicks(procRoot: string, pid: string): bigint | null {
  let stat: string;
  try {
    stat = readBoundedText(path.join(procRoot, pid), 'stat', TASK_FILE_MAX_BYTES);
  } catch {
    return null;
  }
  // Fields after the command name (which may contain spaces and parentheses).
  const token = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  return token !== undefined && /^\d{1,20}$/.test(token) ? BigInt(token) : null;
}
