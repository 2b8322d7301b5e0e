/**
 * The kernel's CPU list format ("0-3,8,10-11"), used by cpuset.cpus, cpuset.effective_cpus,
 * cpuset.cpus.effective and /sys/devices/system/cpu/online. An empty list ("" or "\n") is
 * valid: a cpuset with no CPUs assigned yet.
 */

const MAX_CPU_ID = 65535;

/** Sorted, de-duplicated CPU ids. Throws on anything that is not the kernel's list format. */
export function parseCpuList(text: string): number[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const ids = new Set<number>();
  for (const part of trimmed.split(',')) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!match) throw new Error(`not a CPU list: ${JSON.stringify(text)}`);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first) throw new Error(`descending CPU range ${part} in ${JSON.stringify(text)}`);
    // The kernel's NR_CPUS tops out at 8192; a larger id is garbage, not a CPU (and a range up
    // to it would make this loop run for minutes).
    if (last > MAX_CPU_ID) throw new Error(`CPU id ${last} out of range in ${JSON.stringify(text)}`);
    for (let id = first; id <= last; id++) ids.add(id);
  }
  return [...ids].sort((a, b) => a - b);
}

/** The kernel's compact form: consecutive ids become ranges ("0-3,8,10-11"); [] -> "". */
export function formatCpuList(ids: number[]): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    const first = sorted[i]!;
    let last = first;
    while (i + 1 < sorted.length && sorted[i + 1] === last + 1) last = sorted[++i]!;
    i++;
    // The kernel's bitmap_print_to_pagebuf prints a two-CPU run as a range too ("0-1").
    parts.push(first === last ? `${first}` : `${first}-${last}`);
  }
  return parts.join(',');
}
