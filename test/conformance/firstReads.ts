/**
 * The container's first instructions: its init reads /proc/meminfo, /proc/vmstat and
 * /sys/devices/system/cpu/online before anything else (issue 14: with the OCI hook they must
 * already be the container's own), and what it read is picked apart here.
 */
import type { Limits } from './probes';

/**
 * What the container's init reads before anything else, in this order, kept in FIRST_READ_FILE
 * (/dev/shm: writable under a read-only root too) for probes.ts.
 */
export const FIRST_READ_PATHS = ['/proc/meminfo', '/proc/vmstat', '/sys/devices/system/cpu/online'] as const;
export const FIRST_READ_FILE = '/dev/shm/isolfs-first-read';

/** The init's shell command: the first reads (to `out`, a file or - for stdout), then `then`. */
export function firstInstruction(out: string, then: string): string {
  const reads = FIRST_READ_PATHS.map((p) => `echo '== ${p}'; cat ${p}`).join('; ');
  return out === '-' ? `${reads}; ${then}` : `{ ${reads}; } > ${out}; ${then}`;
}

/** One file's text from the first reads' output. */
export function firstRead(text: string, file: (typeof FIRST_READ_PATHS)[number]): string {
  const start = text.indexOf(`== ${file}\n`);
  if (start < 0) return '';
  const body = text.slice(start + file.length + 4);
  const end = body.indexOf('\n== ');
  return end < 0 ? body : body.slice(0, end + 1);
}

/** CPUs in a cpu list ("0-3,6"); null when it is not one. */
export function cpuListCount(list: string): number | null {
  const text = list.trim();
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(text)) return null;
  return text.split(',').reduce((n, part) => {
    const [a, b] = part.split('-').map(Number);
    return n + (b === undefined ? 1 : b - a + 1);
  }, 0);
}

export const FIRST_MEMINFO = (out: string): string | null => /^MemTotal:\s+(\d+)/m.exec(firstRead(out, '/proc/meminfo'))?.[1] ?? null;
export const FIRST_VMSTAT = (out: string): string | null => /^nr_free_pages (\d+)/m.exec(firstRead(out, '/proc/vmstat'))?.[1] ?? null;
export const FIRST_ONLINE = (out: string): string | null => {
  const count = cpuListCount(firstRead(out, '/sys/devices/system/cpu/online'));
  return count === null ? null : String(count);
};
/** Whether the first reads show the limits (each of the three files). */
export function firstReadsRight(out: string, l: Pick<Limits, 'memoryBytes' | 'cpus'>): Record<'meminfo' | 'vmstat' | 'online', boolean> {
  return {
    meminfo: FIRST_MEMINFO(out) === String(l.memoryBytes / 1024),
    vmstat: Number(FIRST_VMSTAT(out) ?? Number.POSITIVE_INFINITY) <= l.memoryBytes / 4096,
    online: FIRST_ONLINE(out) === String(l.cpus),
  };
}
