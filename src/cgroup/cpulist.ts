/**
 * The kernel's CPU list format ("0-3,8,10-11"), used by cpuset.cpus, cpuset.effective_cpus,
 * cpuset.cpus.effective and /sys/devices/system/cpu/online. An empty list ("" or "\n") is
 * valid: a cpuset with no CPUs assigned yet.
 */

/**
 * The kernel's NR_CPUS tops out at 8192 (x86 MAXSMP, ppc64): no CPU id reaches it. Callers that
 * know the host's possible CPUs pass that smaller count.
 */
export const MAX_CPU_COUNT = 8192;

/**
 * Sorted, de-duplicated CPU ids, each below `cpuCountLimit`. Throws on anything that is not the
 * kernel's list format or names a CPU out of range. Work is bounded by the text's length and the
 * limit, never by the values: ranges are merged before they are expanded.
 */
export function parseCpuList(text: string, cpuCountLimit = MAX_CPU_COUNT): number[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const ranges: [number, number][] = [];
  for (const part of trimmed.split(',')) {
    const match = /^(\d{1,10})(?:-(\d{1,10}))?$/.exec(part);
    if (!match) throw new Error(`not a CPU list: ${shownList(text)}`);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first) throw new Error(`descending CPU range ${part} in ${shownList(text)}`);
    if (last >= cpuCountLimit) {
      throw new Error(`CPU id ${last} out of range (the host has at most ${cpuCountLimit} CPUs) in ${shownList(text)}`);
    }
    ranges.push([first, last]);
  }
  return expandMerged(ranges);
}

/** Ids covered by `ranges`, ascending, each once: sort by start, then walk past covered ids. */
function expandMerged(ranges: [number, number][]): number[] {
  ranges.sort((a, b) => a[0] - b[0]);
  const ids: number[] = [];
  let next = 0; // lowest id not yet emitted
  for (const [first, last] of ranges) {
    for (let id = Math.max(first, next); id <= last; id++) ids.push(id);
    next = Math.max(next, last + 1);
  }
  return ids;
}

function shownList(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
}

/** The kernel's compact form: consecutive ids become ranges ("0-3,8,10-11"); [] -> "". */
export function formatCpuList(ids: number[]): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const runs: [first: number, last: number][] = [];
  for (const id of sorted) {
    const run = runs.at(-1);
    if (run !== undefined && id === run[1] + 1) run[1] = id;
    else runs.push([id, id]);
  }
  // The kernel's bitmap_print_to_pagebuf prints a two-CPU run as a range too ("0-1").
  const parts = runs.map(([first, last]) => (first === last ? `${first}` : `${first}-${last}`));
  return parts.join(',');
}
