// The host CPUs a container sees: row i of /proc/cpuinfo, /proc/stat and cpu/online is host CPU
// visible[i].
import type { CpuLimits } from '../cgroup/snapshot';

/**
 * cpuset ∩ online (null cpuset = every online CPU), then cut to ceil(quotaCpus) CPUs when a
 * CFS quota is set, keeping the lowest ids. Ascending host ids; never empty.
 */
export function visibleCpus(hostOnline: number[], limits: CpuLimits): number[] {
  const online = [...new Set(hostOnline)].sort((a, b) => a - b);
  if (online.length === 0) throw new Error('no online host CPU to show');

  let cpus = online;
  if (limits.cpusetCpus !== null) {
    const cpuset = new Set(limits.cpusetCpus);
    const inCpuset = online.filter((id) => cpuset.has(id));
    // Empty only when racing CPU hotplug: show what is online rather than 0 CPUs.
    if (inCpuset.length > 0) cpus = inCpuset;
  }

  if (limits.quotaCpus !== null) {
    // 1.5 CPUs of quota needs 2 CPUs to run on. quota/period is correctly rounded, so a whole
    // number of CPUs arrives exact (no 2.0000001 -> 3).
    const wanted = Math.max(1, Math.ceil(limits.quotaCpus));
    if (wanted < cpus.length) cpus = cpus.slice(0, wanted);
  }
  return cpus;
}
