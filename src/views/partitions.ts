// /proc/partitions for a container: the host's header and its lines for the disks the
// container's /proc/diskstats shows (those its cgroup did I/O on), verbatim. A cgroup's I/O is
// counted per disk, never per partition, so a disk's partitions are not listed.
import type { HostPartitions } from '../host/partitions';

export function renderPartitions(host: HostPartitions, shown: ReadonlySet<string>): string {
  let text = `${host.header}\n\n`;
  for (const line of host.lines) if (shown.has(line.device)) text += `${line.text}\n`;
  return text;
}
