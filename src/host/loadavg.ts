// The host's /proc/loadavg: "0.52 0.58 0.59 2/345 12345\n" (averages, running/total threads,
// last pid allocated in the reader's pid namespace).
import { CgroupParseError } from '../cgroup/snapshot';
import { readBoundedText } from './boundedRead';
import type { HostLoadavg } from './snapshot';
import { shown } from '../cgroup/parse';

// Counts and pids are ints (at most 10 digits): parsed as Numbers, they must stay exact.
const LOADAVG_LINE = /^(\d{1,10}\.\d{2}) (\d{1,10}\.\d{2}) (\d{1,10}\.\d{2}) (\d{1,10})\/(\d{1,10}) (-?\d{1,10})\n?$/;

/** `procDir` only names the file in errors. */
export function parseLoadavg(text: string, procDir = '/proc'): HostLoadavg {
  const m = LOADAVG_LINE.exec(text);
  if (m === null) {
    throw new CgroupParseError(procDir, 'loadavg', `unexpected format: ${shown(text)}`);
  }
  return {
    load1: m[1],
    load5: m[2],
    load15: m[3],
    running: Number(m[4]),
    total: Number(m[5]),
    // Printed with %d (pid-namespace idr cursor - 1), so the parser accepts a sign.
    lastPid: Number(m[6]),
  };
}

export function readHostLoadavg(procDir = '/proc'): HostLoadavg {
  return parseLoadavg(readBoundedText(procDir, 'loadavg'), procDir);
}
