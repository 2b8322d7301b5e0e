/**
 * The driver: reads a located cgroup into the normalised snapshots, choosing the v1 or v2
 * reader per controller. Views and the daemon call only these; they never learn the version.
 *
 * Every function throws CgroupParseError (naming the directory and file) when a file is
 * malformed or the cgroup directory is gone; a missing optional file has the default stated
 * next to its reader.
 */
import type { CgroupLocation, CpuLimits, CpuUsage, MemorySnapshot } from './snapshot';
import { controllerVersion } from './hierarchy';
import { readV1Memory } from './v1/memory';
import { readV2Memory } from './v2/memory';
import { readV1CpuUsage, readV1CpusetCpus, readV1QuotaCpus } from './v1/cpu';
import { readV2CpuUsage, readV2CpusetCpus, readV2QuotaCpus } from './v2/cpu';

export { readTaskCounts, readOldestProcessStartTicks } from './tasks';

/** The cgroup's memory; null when it has no memory controller (the host's view applies). */
export function readMemory(loc: CgroupLocation): MemorySnapshot | null {
  const dir = loc.dirs.memory;
  const root = loc.roots.memory;
  if (dir === undefined || root === undefined) return null;
  return controllerVersion(loc, 'memory') === 2 ? readV2Memory(dir, root) : readV1Memory(dir, root);
}

/** cpuset and CFS quota; each part null when its controller or file is absent. */
export function readCpuLimits(loc: CgroupLocation): CpuLimits {
  let cpusetCpus: number[] | null = null;
  const cpusetDir = loc.dirs.cpuset;
  const cpusetRoot = loc.roots.cpuset;
  if (cpusetDir !== undefined && cpusetRoot !== undefined) {
    cpusetCpus =
      controllerVersion(loc, 'cpuset') === 2
        ? readV2CpusetCpus(cpusetDir, cpusetRoot, loc.cpuCountLimit)
        : readV1CpusetCpus(cpusetDir, loc.cpuCountLimit);
  }

  let quotaCpus: number | null = null;
  const cpuDir = loc.dirs.cpu;
  const cpuRoot = loc.roots.cpu;
  if (cpuDir !== undefined && cpuRoot !== undefined) {
    quotaCpus =
      controllerVersion(loc, 'cpu') === 2
        ? readV2QuotaCpus(cpuDir, cpuRoot)
        : readV1QuotaCpus(cpuDir, cpuRoot);
  }
  return { cpusetCpus, quotaCpus };
}

/**
 * CPU time used by the cgroup: v1 cpuacct when the caller has one (it has the per-CPU split);
 * otherwise, for a v2 container, cpu.stat of its unified cgroup (present in every v2 cgroup,
 * cpu controller or not). null otherwise: in a hybrid layout the unified hierarchy is only
 * systemd's process tracking, whose cgroup need not be the container's.
 */
export function readCpuUsage(loc: CgroupLocation): CpuUsage | null {
  if (controllerVersion(loc, 'cpuacct') === 1) return readV1CpuUsage(loc.dirs.cpuacct!, loc.cpuCountLimit);
  if (loc.version === 2 && loc.unifiedDir !== null) return readV2CpuUsage(loc.unifiedDir);
  return null;
}
