/**
 * Parse the host's /proc/meminfo: "Key:<spaces>value[ kB]" per line (fs/proc/meminfo.c and
 * hugetlb_report_meminfo). Every line is kept, in order, with its unit, so the view can emit
 * the host's keys in the host's order.
 */
import { CgroupParseError } from '../cgroup/snapshot';
import { readBoundedText } from './boundedRead';
import type { HostMeminfo, MeminfoLine } from './snapshot';
import { shown } from '../cgroup/parse';

// Keys are like "MemTotal", "Active(anon)", "HugePages_Total", "DirectMap4k".
const LINE = /^([^:\s]+):\s+(\d{1,20})(?: (kB))?$/; // values are u64: at most 20 digits

/** `procDir` only names the file in errors (a CgroupParseError naming directory and file). */
export function parseMeminfo(text: string, procDir = '/proc'): HostMeminfo {
  const fail = (reason: string) => new CgroupParseError(procDir, 'meminfo', reason);
  const lines: MeminfoLine[] = [];
  const byKey = new Map<string, bigint>();
  const rows = text.split('\n');
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    if (row === '') continue;
    const match = LINE.exec(row);
    if (!match) throw fail(`line ${i + 1} is not "Key: value [kB]": ${shown(row)}`);
    const key = match[1]!;
    if (byKey.has(key)) throw fail(`line ${i + 1}: duplicate key ${key}`);
    const value = BigInt(match[2]!);
    lines.push({ key, value, unit: match[3] ?? '' });
    byKey.set(key, value);
  }
  if (!byKey.has('MemTotal')) throw fail('no MemTotal line');
  return { lines, get: (key) => byKey.get(key) };
}

/**
 * Read and parse /proc/meminfo. Bounded and non-blocking (boundedRead.ts).
 */
export function readHostMeminfo(procDir = '/proc'): HostMeminfo {
  return parseMeminfo(readBoundedText(procDir, 'meminfo'), procDir);
}
