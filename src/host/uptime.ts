/**
 * Parse the host's /proc/uptime: "2167.27 4270.89\n" — seconds since boot, and idle seconds
 * summed over every CPU (so idle can exceed uptime on a machine with more than one CPU).
 */
import { readFileSync } from 'node:fs';
import { CgroupParseError } from '../cgroup/snapshot';
import type { HostUptime } from './snapshot';

const UPTIME_LINE = /^(\d+\.\d{2}) (\d+\.\d{2})\n?$/;

/** `procDir` only names the file in errors. */
export function parseUptime(text: string, procDir = '/proc'): HostUptime {
  const m = UPTIME_LINE.exec(text);
  if (m === null) {
    throw new CgroupParseError(procDir, 'uptime', `unexpected format: ${JSON.stringify(text)}`);
  }
  return { uptimeSec: Number(m[1]), idleSec: Number(m[2]) };
}

/** Read and parse /proc/uptime (synchronously: procfs never blocks on disk). */
export function readHostUptime(procDir = '/proc'): HostUptime {
  return parseUptime(readFileSync(`${procDir}/uptime`, 'utf8'), procDir);
}
