// The host's /proc/diskstats: "major minor name" and the counters, one line per disk and
// partition, in the kernel's order. Only the device numbers, names and the field count are
// kept: a container's lines carry its own counters (views/diskstats.ts).
import { CgroupParseError } from '../cgroup/snapshot';
import { forEachLine, parseDeviceNumber } from '../cgroup/parse';

export interface HostBlockDevice {
  major: number;
  minor: number;
  name: string;
}

export interface HostDiskstats {
  /** In the host file's order. */
  devices: HostBlockDevice[];
  /** Fields per line, major, minor and name included: 14 before 4.18, 18 to 5.4, 20 since. */
  fieldCount: number;
}

/** Fields per line of the kernel's current format (Documentation/admin-guide/iostats.rst). */
export const DISKSTATS_FIELD_COUNT = 20;
const OLDEST_FIELD_COUNT = 14;
const DEVICE_NAME = /^[^\s/]{1,64}$/; // a kernel disk name: no slash, short (DISK_NAME_LEN 32)

/** `procDir` only names the file in errors. */
export function parseDiskstats(text: string, procDir = '/proc'): HostDiskstats {
  const devices: HostBlockDevice[] = [];
  let fieldCount: number | null = null;
  forEachLine(text, procDir, 'diskstats', (line) => {
    const fields = line.text.trim().split(/\s+/);
    const device = parseDeviceNumber(`${fields[0]}:${fields[1]}`);
    if (device === null || fields.length < OLDEST_FIELD_COUNT || !DEVICE_NAME.test(fields[2])) {
      throw line.notA('"major minor name counters..."');
    }
    fieldCount ??= fields.length;
    devices.push({ ...device, name: fields[2] });
  });
  if (devices.length > 0 && fieldCount === null) throw new CgroupParseError(procDir, 'diskstats', 'no fields');
  return { devices, fieldCount: fieldCount ?? DISKSTATS_FIELD_COUNT };
}
