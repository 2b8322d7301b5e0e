/**
 * The declarative opt-out a Kubernetes user expects: a container whose first process was started
 * with CONTAINER_STATS_ISOLATED=0 in its environment reads the host's files. An explicit write to
 * the control file wins over it (see the README's precedence table).
 *
 * The first process is the oldest one in the container's cgroup (smallest start time). Its
 * environment is fixed at exec, so the answer is cached per container for a while instead of
 * reading /proc/<pid>/environ on every request.
 */
import fs from 'node:fs';
import path from 'node:path';

export const OPT_OUT_ENV = 'CONTAINER_STATS_ISOLATED';
const CACHE_MS = 30_000;

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
    this.cache.set(key, { optedOut, expiresAtMs: nowMs + CACHE_MS });
    return optedOut;
  }

  forget(key: string): void {
    this.cache.delete(key);
  }

  private readOptOut(cgroupDir: string): boolean {
    const pid = oldestProcess(this.procRoot, cgroupDir);
    if (pid === null) return false;
    let environ: Buffer;
    try {
      environ = fs.readFileSync(path.join(this.procRoot, String(pid), 'environ'));
    } catch {
      return false; // gone, or not ours to read: no declaration
    }
    for (const entry of environ.toString('utf8').split('\0')) {
      if (entry.startsWith(`${OPT_OUT_ENV}=`)) return entry.slice(OPT_OUT_ENV.length + 1).trim() === '0';
    }
    return false;
  }
}

/** The pid with the smallest start time among the cgroup's processes; null if none readable. */
export function oldestProcess(procRoot: string, cgroupDir: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(cgroupDir, 'cgroup.procs'), 'latin1');
  } catch {
    return null;
  }
  let best: number | null = null;
  let bestStart = 0n;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const pid = Number(line);
    let stat: string;
    try {
      stat = fs.readFileSync(path.join(procRoot, line, 'stat'), 'latin1');
    } catch {
      continue;
    }
    // Fields after the command name (which may contain spaces and parentheses).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = BigInt(fields[19] ?? '0'); // field 22 overall: starttime
    if (best === null || start < bestStart) {
      best = pid;
      bestStart = start;
    }
  }
  return best;
}
