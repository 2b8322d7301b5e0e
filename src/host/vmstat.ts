// The host's /proc/vmstat: one "name value" pair per line, in the kernel's order.
import { CgroupParseError } from '../cgroup/snapshot';
import { readBoundedText } from './boundedRead';
import type { HostVmstat } from './snapshot';
import { forEachLine, keyAndValue } from '../cgroup/parse';

const UNSIGNED_DECIMAL = /^\d{1,20}$/; // u64: at most 20 digits

/** `procDir` only names the file in errors. */
export function parseVmstat(text: string, procDir = '/proc'): HostVmstat {
  const entries: [string, bigint][] = [];
  const byKey = new Map<string, bigint>();
  forEachLine(text, procDir, 'vmstat', (line) => {
    const pair = keyAndValue(line.text);
    if (pair === null || !UNSIGNED_DECIMAL.test(pair[1])) throw line.notA('"name value"');
    const [key, digits] = pair;
    if (byKey.has(key)) throw line.fail(`duplicate key ${key}`);
    const value = BigInt(digits);
    entries.push([key, value]);
    byKey.set(key, value);
  });
  if (entries.length === 0) throw new CgroupParseError(procDir, 'vmstat', 'empty');
  return { entries, get: (key) => byKey.get(key) };
}

export function readHostVmstat(procDir = '/proc'): HostVmstat {
  return parseVmstat(readBoundedText(procDir, 'vmstat'), procDir);
}
