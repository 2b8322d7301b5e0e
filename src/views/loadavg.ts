/**
 * /proc/loadavg for a container: "0.52 0.58 0.59 2/345 12345\n", the kernel's format
 * ("%lu.%02lu %lu.%02lu %lu.%02lu %u/%d %d\n").
 *
 * - The three averages: the container's, from the load sampler (R + D threads of its cgroup,
 *   folded every 5 s with the kernel's constants), printed with the kernel's rounding.
 * - running/total: the kernel prints nr_running() (runnable threads) / nr_threads (all
 *   threads); here the cgroup's threads in state R / all its threads, from the sampler's last
 *   count (at most one sampling period old). The reader itself is running while it reads, as
 *   the kernel would count it, so running is at least 1 and total at least running.
 * - Last field: the kernel prints the last pid allocated in the READER's pid namespace. The
 *   daemon cannot see a container namespace's pid cursor without entering it, so this is the
 *   host's value (the daemon's pid namespace). Tools (uptime, top, w) ignore the field; it
 *   reveals only how fast the host allocates pids.
 *
 * No sample (null: the sampler has no figure, e.g. the cgroup vanished between lookup and read)
 * gives the host's line unchanged, as a reader with isolation off would see.
 */
import type { HostLoadavg } from '../host/snapshot';
import { formatLoad } from '../loadavg/kernelLoad';
import type { LoadSample } from '../loadavg/sampler';

export function renderLoadavg(load: LoadSample | null, host: HostLoadavg): string {
  if (load === null) {
    return (
      `${host.load1} ${host.load5} ${host.load15} ` +
      `${host.running}/${host.total} ${host.lastPid}\n`
    );
  }
  const running = Math.max(1, load.running);
  const total = Math.max(running, load.total);
  return (
    `${formatLoad(load.load1)} ${formatLoad(load.load5)} ${formatLoad(load.load15)} ` +
    `${running}/${total} ${host.lastPid}\n`
  );
}
