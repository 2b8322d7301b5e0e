/**
 * Parse the host's /sys/devices/system/cpu/online: the kernel's CPU list format ("0-1\n",
 * "0,2-5\n"), the CPUs the scheduler can run on right now; and the host's possible CPUs, the
 * bound for every CPU id a cgroup file may name.
 */
import { CgroupParseError } from '../cgroup/snapshot';
import { MAX_CPU_COUNT, parseCpuList } from '../cgroup/cpulist';
import { parseCpuListIn } from '../cgroup/parse';
import { readBoundedText } from './boundedRead';

const FILE = 'devices/system/cpu/online';

/** Online host CPU ids, ascending. `sysDir` only names the file in errors. */
export function parseCpuOnline(text: string, sysDir = '/sys'): number[] {
  const cpus = parseCpuListIn(text, sysDir, FILE);
  // The boot CPU can never go offline on most architectures: an empty list is a broken file.
  if (cpus.length === 0) throw new CgroupParseError(sysDir, FILE, 'no CPU online');
  return cpus;
}

/** Read and parse the online list. */
export function readHostCpuOnline(sysDir = '/sys'): number[] {
  return parseCpuOnline(readBoundedText(sysDir, FILE), sysDir);
}

/**
 * How many CPU ids this kernel can ever use: the highest possible CPU + 1 (cpu/possible, fixed
 * at boot; cpuacct files list exactly these), else kernel_max + 1 (NR_CPUS), else the ceiling
 * MAX_CPU_COUNT; never above that ceiling. Read once at start-up.
 */
export function readHostCpuCountLimit(sysDir = '/sys'): number {
  try {
    const possible = parseCpuList(readBoundedText(sysDir, 'devices/system/cpu/possible'));
    const highest = possible.at(-1);
    if (highest !== undefined) return highest + 1;
  } catch {
    // an old kernel or a stripped /sys: try kernel_max
  }
  try {
    const kernelMax = Number(readBoundedText(sysDir, 'devices/system/cpu/kernel_max').trim());
    if (Number.isInteger(kernelMax) && kernelMax >= 0) return Math.min(kernelMax + 1, MAX_CPU_COUNT);
  } catch {
    // nothing to go by: the ceiling
  }
  return MAX_CPU_COUNT;
}
