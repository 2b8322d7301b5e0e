/**
 * cgroup v2 cpuset and cpu controllers -> CpuLimits / CpuUsage.
 *
 * - cpuset.cpus.effective: the CPUs the cgroup may use. Only cgroups with the cpuset
 *   controller enabled have it; the others use their nearest ancestor's, so we walk up.
 * - cpu.max: "$MAX $PERIOD" in µs, "max 100000" = no limit; non-root cgroups only. Every
 *   ancestor's bandwidth limit applies too, so the limit is the tightest ratio up the tree.
 * - cpu.stat: usage_usec, user_usec, system_usec in every cgroup (a core file, present even
 *   without the cpu controller). No per-CPU split exists on v2.
 */
import { CgroupParseError } from '../snapshot';
import type { CpuUsage } from '../snapshot';
import { parseCpuListIn, parseUnsigned, readFlatKeyed, readOptionalFile, selfAndAncestors, shown } from '../parse';

/** Effective cpuset of the v2 cgroup at `dir` (or its nearest ancestor that has one). */
export function readV2CpusetCpus(dir: string, root: string, cpuCountLimit?: number): number[] | null {
  for (const level of selfAndAncestors(dir, root)) {
    const text = readOptionalFile(level, 'cpuset.cpus.effective');
    if (text === null) continue;
    const cpus = parseCpuListIn(text, level, 'cpuset.cpus.effective', cpuCountLimit);
    // The kernel never leaves an effective cpuset empty (it falls back to the parent's), so an
    // empty one carries no information.
    return cpus.length === 0 ? null : cpus;
  }
  return null;
}

/** Tightest cpu.max, in CPUs, of `dir` and its ancestors up to `root`; null = none. */
export function readV2QuotaCpus(dir: string, root: string): number | null {
  let tightest: number | null = null;
  for (const level of selfAndAncestors(dir, root)) {
    const text = readOptionalFile(level, 'cpu.max');
    if (text === null) continue;
    const fields = text.trim().split(/\s+/);
    if (fields.length !== 2) {
      throw new CgroupParseError(level, 'cpu.max', `not "$MAX $PERIOD": ${shown(text.trim())}`);
    }
    const periodUs = parseUnsigned(fields[1]!, level, 'cpu.max', 'period');
    if (fields[0] === 'max') continue;
    const quotaUs = parseUnsigned(fields[0]!, level, 'cpu.max', 'quota');
    if (periodUs === 0n) throw new CgroupParseError(level, 'cpu.max', 'period is 0');
    const cpus = Number(quotaUs) / Number(periodUs); // small numbers: exact enough as doubles
    if (tightest === null || cpus < tightest) tightest = cpus;
  }
  return tightest;
}

const NS_PER_USEC = 1000n;

/** CPU time of the v2 cgroup at `dir`; null when it has no cpu.stat. */
export function readV2CpuUsage(dir: string): CpuUsage | null {
  const stat = readFlatKeyed(dir, 'cpu.stat');
  if (stat === null) return null;
  const userUsec = stat.get('user_usec');
  const systemUsec = stat.get('system_usec');
  if (userUsec === undefined || systemUsec === undefined) {
    throw new CgroupParseError(dir, 'cpu.stat', 'no user_usec / system_usec lines');
  }
  return { userNs: userUsec * NS_PER_USEC, systemNs: systemUsec * NS_PER_USEC, perCpu: null };
}
