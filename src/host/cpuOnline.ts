/**
 * Parse the host's /sys/devices/system/cpu/online: the kernel's CPU list format ("0-1\n",
 * "0,2-5\n"), the CPUs the scheduler can run on right now.
 */
import { readFileSync } from 'node:fs';
import { CgroupParseError } from '../cgroup/snapshot';
import { parseCpuList } from '../cgroup/cpulist';

const FILE = 'devices/system/cpu/online';

/** Online host CPU ids, ascending. `sysDir` only names the file in errors. */
export function parseCpuOnline(text: string, sysDir = '/sys'): number[] {
  let cpus: number[];
  try {
    cpus = parseCpuList(text);
  } catch (err) {
    throw new CgroupParseError(sysDir, FILE, (err as Error).message);
  }
  // The boot CPU can never go offline on most architectures: an empty list is a broken file.
  if (cpus.length === 0) throw new CgroupParseError(sysDir, FILE, 'no CPU online');
  return cpus;
}

/** Read and parse the online list (synchronously: sysfs never blocks on disk). */
export function readHostCpuOnline(sysDir = '/sys'): number[] {
  return parseCpuOnline(readFileSync(`${sysDir}/${FILE}`, 'utf8'), sysDir);
}
