// /proc/loadavg for a container: the load sampler's averages of its cgroup's R + D threads and
// its thread counts; the last pid stays the host's, as the daemon cannot see the container's pid
// namespace cursor (docs/views.md#loadavg).
import type { HostLoadavg } from '../host/snapshot';
import { formatLoad } from '../loadavg/kernelLoad';
import type { LoadSample } from '../loadavg/sampler';

export function renderLoadavg(load: LoadSample | null, host: HostLoadavg): string {
  // No sample (the cgroup vanished between lookup and read): the host's line unchanged.
  if (load === null) {
    return (
      `${host.load1} ${host.load5} ${host.load15} ` +
      `${host.running}/${host.total} ${host.lastPid}\n`
    );
  }
  // The reader itself is running while it reads, as the kernel would count it.
  const running = Math.max(1, load.running);
  const total = Math.max(running, load.total);
  return (
    `${formatLoad(load.load1)} ${formatLoad(load.load5)} ${formatLoad(load.load15)} ` +
    `${running}/${total} ${host.lastPid}\n`
  );
}
