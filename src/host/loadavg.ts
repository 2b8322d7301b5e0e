/**
 * Parse the host's /proc/loadavg: "0.52 0.58 0.59 2/345 12345\n"
 * (three load averages, runnable/total threads, last pid allocated in the reader's pid namespace).
 */
import { readFileSync } from 'node:fs';
import { CgroupParseError } from '../cgroup/snapshot';
import type { HostLoadavg } from './snapshot';

const LOADAVG_LINE = /^(\d+\.\d{2}) (\d+\.\d{2}) (\d+\.\d{2}) (\d+)\/(\d+) (-?\d+)\n?$/;

/** `procDir` only names the file in errors. */
export function parseLoadavg(text: string, procDir = '/proc'): HostLoadavg {
  const m = LOADAVG_LINE.exec(text);
  if (m === null) {
    throw new CgroupParseError(procDir, 'loadavg', `unexpected format: ${JSON.stringify(text)}`);
  }
  return {
    load1: m[1]!,
    load5: m[2]!,
    load15: m[3]!,
    running: Number(m[4]),
    total: Number(m[5]),
    // Printed with %d (pid-namespace idr cursor - 1), so the parser accepts a sign.
    lastPid: Number(m[6]),
  };
}

/** Read and parse /proc/loadavg (synchronously: procfs never blocks on disk). */
export function readHostLoadavg(procDir = '/proc'): HostLoadavg {
  return parseLoadavg(readFileSync(`${procDir}/loadavg`, 'utf8'), procDir);
}
