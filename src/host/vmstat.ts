/**
 * Parse the host's /proc/vmstat: one "name value" pair per line, in the kernel's order.
 */
import { CgroupParseError } from '../cgroup/snapshot';
import { readBoundedText } from './boundedRead';
import type { HostVmstat } from './snapshot';
import { shown } from '../cgroup/parse';

const UNSIGNED_DECIMAL = /^\d{1,20}$/; // u64: at most 20 digits

/** `procDir` only names the file in errors (a CgroupParseError naming the directory and file). */
export function parseVmstat(text: string, procDir = '/proc'): HostVmstat {
  const fail = (reason: string) => new CgroupParseError(procDir, 'vmstat', reason);
  const entries: Array<[string, bigint]> = [];
  const byKey = new Map<string, bigint>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || !UNSIGNED_DECIMAL.test(parts[1]!)) {
      throw fail(`line ${i + 1} is not "name value": ${shown(line)}`);
    }
    const key = parts[0]!;
    if (byKey.has(key)) throw fail(`line ${i + 1}: duplicate key ${key}`);
    const value = BigInt(parts[1]!);
    entries.push([key, value]);
    byKey.set(key, value);
  }
  if (entries.length === 0) throw fail('empty');
  return { entries, get: (key) => byKey.get(key) };
}

/** Read and parse /proc/vmstat (bounded and non-blocking: boundedRead.ts). */
export function readHostVmstat(procDir = '/proc'): HostVmstat {
  return parseVmstat(readBoundedText(procDir, 'vmstat'), procDir);
}
