// cgroup v2 cpuset and cpu controllers -> CpuLimits / CpuUsage. v2 has no per-CPU time split.
import { CgroupParseError } from '../snapshot';
import type { CpuUsage } from '../snapshot';
import { leastUpTree, parseUnsigned, readFirstCpuset, readFlatKeyed, readOptionalFile, selfAndAncestors, shown } from '../parse';
import { readLimitFile } from '../limitCache';

/** cpuset.cpus.effective of the v2 cgroup at `dir`, or of its nearest ancestor that has one
 *  (only cgroups with the cpuset controller enabled have the file). */
export function readV2CpusetCpus(dir: string, root: string, cpuCountLimit?: number): number[] | null {
  const places = selfAndAncestors(dir, root).map((level): [string, string] => [level, 'cpuset.cpus.effective']);
  return readFirstCpuset(places, cpuCountLimit);
}

/** Tightest cpu.max ("$MAX $PERIOD", "max" = none), in CPUs, of `dir` and its ancestors up to
 *  `root`; null = none. */
export function readV2QuotaCpus(dir: string, root: string): number | null {
  return leastUpTree(dir, root, (level) => {
    const text = readLimitFile(level, dir, 'cpu.max');
    if (text === null) return null;
    const [max, period, ...rest] = text.trim().split(/\s+/);
    if (max === undefined || period === undefined || rest.length > 0) {
      throw new CgroupParseError(level, 'cpu.max', `not "$MAX $PERIOD": ${shown(text.trim())}`);
    }
    const periodUs = parseUnsigned(period, level, 'cpu.max', 'period');
    if (max === 'max') return null;
    const quotaUs = parseUnsigned(max, level, 'cpu.max', 'quota');
    if (periodUs === 0n) throw new CgroupParseError(level, 'cpu.max', 'period is 0');
    return Number(quotaUs) / Number(periodUs); // small numbers: exact enough as doubles
  });
}

const NS_PER_USEC = 1000n;

/** CPU time of the v2 cgroup at `dir` (cpu.stat, present even without the cpu controller);
 *  null when it has no cpu.stat. */
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

/** cpu.stat as read (usage_usec first): a mark that changes whenever a task of the cgroup runs
 *  (loadavg/sampler.ts); null when absent. */
export function readV2CpuTimeMark(dir: string): string | null {
  return readOptionalFile(dir, 'cpu.stat');
}
