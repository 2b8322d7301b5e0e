// /sys/devices/system/cpu/online for a container: its visible CPUs renumbered from 0. glibc's
// sysconf(_SC_NPROCESSORS_ONLN) (nproc) counts this file first.

/** "0\n" for one CPU, "0-N\n" for N+1 (the kernel prints a two-CPU run as a range too: "0-1"). */
export function renderCpuOnline(count: number): string {
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`cannot render /sys/devices/system/cpu/online for ${count} CPUs`);
  }
  return count === 1 ? '0\n' : `0-${count - 1}\n`;
}
