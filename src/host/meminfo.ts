/**
 * Parse the host's /proc/meminfo: "Key:<spaces>value[ kB]" per line (fs/proc/meminfo.c and
 * hugetlb_report_meminfo). Every line is kept, in order, with its unit, so the view can emit
 * the host's keys in the host's order.
 */
import { readFileSync } from 'node:fs';
import { CgroupParseError } from '../cgroup/snapshot';
import type { HostMeminfo, MeminfoLine } from './snapshot';

// Keys are like "MemTotal", "Active(anon)", "HugePages_Total", "DirectMap4k".
const LINE = /^([^:\s]+):\s+(\d+)(?: (kB))?$/;

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
    if (!match) throw fail(`line ${i + 1} is not "Key: value [kB]": ${JSON.stringify(row)}`);
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
 * Read and parse /proc/meminfo. Synchronous on purpose: procfs never blocks on disk, and a
 * sync read is ~10x cheaper than a trip through libuv's thread pool.
 */
export function readHostMeminfo(procDir = '/proc'): HostMeminfo {
  return parseMeminfo(readFileSync(`${procDir}/meminfo`, 'utf8'), procDir);
}
