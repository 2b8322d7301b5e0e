/**
 * The host CPUs a container sees: the one numbering /proc/cpuinfo, /proc/stat and
 * /sys/devices/system/cpu/online share (row i of each is host CPU visible[i]).
 */
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
    // An effective cpuset is always within the online CPUs; an empty intersection is a read
    // racing CPU hotplug (or a v1 cpuset.cpus naming offline CPUs only): show what is online
    // rather than zero CPUs, which no program handles.
    if (inCpuset.length > 0) cpus = inCpuset;
  }

  if (limits.quotaCpus !== null) {
    // A quota of 1.5 CPUs lets the container run 1.5 CPUs' worth of time per period, spread over
    // up to all its cpuset CPUs: 2 CPUs is the smallest count that can hold it. quota/period is
    // a correctly rounded division, so a whole number of CPUs arrives exact (no 2.0000001 -> 3).
    const wanted = Math.max(1, Math.ceil(limits.quotaCpus));
    if (wanted < cpus.length) cpus = cpus.slice(0, wanted);
  }
  return cpus;
}
