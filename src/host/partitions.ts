// The host's /proc/partitions: a header, a blank line, then "major minor #blocks name" per disk
// and partition that has a size. Lines are kept verbatim (the kernel's own padding).
import { CgroupParseError } from '../cgroup/snapshot';
import { parseDeviceNumber } from '../cgroup/parse';

export interface HostPartitions {
  header: string;
  /** Each line by "major:minor", in the host file's order. */
  lines: Array<{ device: string; text: string }>;
}

/** The kernel's header (block/genhd.c show_partition), then a blank line. */
export const PARTITIONS_HEADER = 'major minor  #blocks  name';

/** `procDir` only names the file in errors. */
export function parsePartitions(text: string, procDir = '/proc'): HostPartitions {
  const [header, ...rest] = text.split('\n');
  if (header.trim().split(/\s+/).join(' ') !== 'major minor #blocks name') {
    throw new CgroupParseError(procDir, 'partitions', `no "${PARTITIONS_HEADER}" header`);
  }
  const lines: HostPartitions['lines'] = [];
  for (const [index, line] of rest.entries()) {
    if (line.trim() === '') continue;
    const fields = line.trim().split(/\s+/);
    const device = fields.length === 4 && /^\d{1,20}$/.test(fields[2]) ? parseDeviceNumber(`${fields[0]}:${fields[1]}`) : null;
    if (device === null) throw new CgroupParseError(procDir, 'partitions', `line ${index + 2} is not "major minor #blocks name"`);
    lines.push({ device: `${device.major}:${device.minor}`, text: line });
  }
  return { header, lines };
}
