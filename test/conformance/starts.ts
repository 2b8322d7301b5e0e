/**
 * Many short container starts, each one's init reading /proc/meminfo, /proc/vmstat and
 * /sys/devices/system/cpu/online as its first instructions and exiting: how often the first
 * instruction reads the container's own files. With the OCI hook every start must (issue 14's
 * "Done when"); with discovery alone it is a race, counted and printed, never asserted.
 */
import { FIRST_MEMINFO, FIRST_ONLINE, FIRST_VMSTAT, firstReadsRight } from './firstReads';
import type { Limits } from './probes';
import type { ExecResult } from './podman';

/** Starts per mode: a race lost one time in ten shows (95 %); ~0.3 s each here under podman, less under ctr. */
export const STARTS = 30;

export interface StartsResult {
  /** What started them, as the table says it ("podman, OCI hook"). */
  label: string;
  starts: number;
  /** Starts whose three first reads were all the container's own. */
  right: number;
  /** One line per start that read a host's file: which ones, and what. */
  wrong: string[];
  /** Of those starts, how many read the host's copy of each file. */
  hostReads: Record<'meminfo' | 'vmstat' | 'online', number>;
  /** Starts whose output had not all three files (the container did not run as meant). */
  broken: string[];
  seconds: number;
}

/** Runs `start(i)` STARTS times, one after another, and sorts what each init read. */
export async function repeatStarts(label: string, limits: Pick<Limits, 'memoryBytes' | 'cpus'>, start: (i: number) => Promise<ExecResult>): Promise<StartsResult> {
  const result: StartsResult = { label, starts: 0, right: 0, wrong: [], hostReads: { meminfo: 0, vmstat: 0, online: 0 }, broken: [], seconds: 0 };
  const began = performance.now();
  for (let i = 0; i < STARTS; i++) {
    const run = await start(i);
    result.starts++;
    const out = run.stdout;
    if (run.code !== 0 || [FIRST_MEMINFO, FIRST_VMSTAT, FIRST_ONLINE].some((read) => read(out) === null)) {
      result.broken.push(`start ${i}: exit ${run.code}: ${run.stderr.trim().slice(0, 300)} ${out.slice(0, 200)}`);
      continue;
    }
    const right = firstReadsRight(out, limits);
    if (right.meminfo && right.vmstat && right.online) {
      result.right++;
    } else {
      for (const [file, ok] of Object.entries(right) as [keyof typeof right, boolean][]) if (!ok) result.hostReads[file]++;
      const seen = `MemTotal ${FIRST_MEMINFO(out)} kB, nr_free_pages ${FIRST_VMSTAT(out)}, ${FIRST_ONLINE(out)} CPUs online`;
      result.wrong.push(`start ${i}: the host's ${Object.entries(right).filter(([, ok]) => !ok).map(([f]) => f).join(', ')} (${seen})`);
    }
  }
  result.seconds = (performance.now() - began) / 1000;
  return result;
}

/** One line for the results' header. */
export function describeStarts(r: StartsResult): string {
  const broken = r.broken.length > 0 ? `, ${r.broken.length} did not run as meant` : '';
  const host = Object.entries(r.hostReads).filter(([, n]) => n > 0).map(([file, n]) => `${file} ${n}`);
  const hostText = host.length > 0 ? `; the host's copy read: ${host.join(', ')}` : '';
  return `${r.label}: the first instruction read its own meminfo, vmstat and cpu/online in ${r.right} of ${r.starts} starts${hostText}${broken} (${r.seconds.toFixed(1)} s).`;
}
