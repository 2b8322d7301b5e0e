// The host's /proc/meminfo: "Key:<spaces>value[ kB]" per line. Every line is kept, in order,
// with its unit, so the view can print the host's keys in the host's order.
import { CgroupParseError } from '../cgroup/snapshot';
import { readBoundedText } from './boundedRead';
import type { HostMeminfo, MeminfoLine } from './snapshot';
import { forEachLine } from '../cgroup/parse';

// Keys are like "MemTotal", "Active(anon)", "HugePages_Total"; values are u64 (<= 20 digits).
const LINE = /^([^:\s]+):\s+(\d{1,20})(?: (kB))?$/;

/** `procDir` only names the file in errors. */
export function parseMeminfo(text: string, procDir = '/proc'): HostMeminfo {
  const lines: MeminfoLine[] = [];
  const byKey = new Map<string, bigint>();
  forEachLine(text, procDir, 'meminfo', (line) => {
    const match = LINE.exec(line.text);
    if (!match) throw line.notA('"Key: value [kB]"');
    const key = match[1];
    if (byKey.has(key)) throw line.fail(`duplicate key ${key}`);
    const value = BigInt(match[2]);
    lines.push({ key, value, unit: match[3] ?? '' });
    byKey.set(key, value);
  });
  if (!byKey.has('MemTotal')) throw new CgroupParseError(procDir, 'meminfo', 'no MemTotal line');
  return { lines, get: (key) => byKey.get(key) };
}

export function readHostMeminfo(procDir = '/proc'): HostMeminfo {
  return parseMeminfo(readBoundedText(procDir, 'meminfo'), procDir);
}
