// The host's /proc/uptime: "2167.27 4270.89\n", seconds since boot and idle seconds summed over
// every CPU.
import { CgroupParseError } from '../cgroup/snapshot';
import { readBoundedText } from './boundedRead';
import type { HostUptime } from './snapshot';
import { shown } from '../cgroup/parse';

// At most 15 digits before the point: the value stays an exact-enough double.
const UPTIME_LINE = /^(\d{1,15}\.\d{2}) (\d{1,15}\.\d{2})\n?$/;

/** `procDir` only names the file in errors. */
export function parseUptime(text: string, procDir = '/proc'): HostUptime {
  const m = UPTIME_LINE.exec(text);
  if (m === null) {
    throw new CgroupParseError(procDir, 'uptime', `unexpected format: ${shown(text)}`);
  }
  return { uptimeSec: Number(m[1]), idleSec: Number(m[2]) };
}

export function readHostUptime(procDir = '/proc'): HostUptime {
  return parseUptime(readBoundedText(procDir, 'uptime'), procDir);
}
