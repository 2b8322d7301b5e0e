// /proc/meminfo for a container: the host's keys in the host's order and format, with the
// container's memory in place of the host's. Sources and formulas: docs/views.md#meminfo.
import type { MemorySnapshot } from '../cgroup/snapshot';
import type { HostMeminfo } from '../host/snapshot';
import { atLeastZero, minBig } from '../cgroup/bigints';
import {
  containerMemFreeBytes,
  containerMemTotalBytes,
  containerSwapTotalBytes,
  containerSwapUsedBytes,
} from './memoryMath';

const KIB = 1024n;

/** Lines that are not amounts of memory (page size, address space): never clamped to MemTotal. */
const NOT_MEMORY_AMOUNTS: ReadonlySet<string> = new Set([
  'Hugepagesize',
  'VmallocTotal',
  'VmallocChunk',
]);

function kb(bytes: bigint): bigint {
  return atLeastZero(bytes) / KIB;
}

export function renderMeminfo(host: HostMeminfo, memory: MemorySnapshot): string {
  const { values, totalKb, availableKb, swapUsedKb } = containerValuesKb(host, memory);
  const bounds = passThroughBoundsKb(values, swapUsedKb);

  let out = '';
  let printedAvailable = false;
  for (const line of host.lines) {
    let value: bigint;
    const own = values.get(line.key);
    const bound = bounds.get(line.key);
    if (own !== undefined) value = own;
    else if (bound !== undefined) value = minBig(line.value, bound);
    else if (line.unit !== 'kB' || NOT_MEMORY_AMOUNTS.has(line.key)) value = line.value; // not an amount of memory
    else value = minBig(line.value, totalKb); // no memory figure of the container exceeds its total
    out += formatMeminfoLine(line.key, value, line.unit);
    if (line.key === 'MemAvailable') printedAvailable = true;
    // Kernels before 3.14 have no MemAvailable; print it where newer kernels do.
    if (line.key === 'MemFree' && host.get('MemAvailable') === undefined) {
      out += formatMeminfoLine('MemAvailable', availableKb, 'kB');
      printedAvailable = true;
    }
  }
  if (!printedAvailable) {
    // A host file without MemFree (never seen): MemAvailable is still always printed.
    out = formatMeminfoLine('MemAvailable', availableKb, 'kB') + out;
  }
  return out;
}

interface ContainerValuesKb {
  /** By meminfo key. */
  values: Map<string, bigint>;
  totalKb: bigint;
  availableKb: bigint;
  swapUsedKb: bigint;
}

/** The values the container's own accounting gives, by meminfo key, in kB; and its swap use. */
function containerValuesKb(host: HostMeminfo, memory: MemorySnapshot): ContainerValuesKb {
  const hostTotalKb = host.get('MemTotal') ?? 0n;
  const hostSwapTotalKb = host.get('SwapTotal') ?? 0n;
  const s = memory.stat;
  const totalKb = kb(containerMemTotalBytes(hostTotalKb, memory));
  const capped = (bytes: bigint) => minBig(kb(bytes), totalKb);
  const { availableKb, freeKb } = availableAndFreeKb(host, memory, capped);

  const swapTotalKb = kb(containerSwapTotalBytes(hostSwapTotalKb, memory));
  // Same rounding as /proc/swaps (views/swaps.ts): used and total floored separately.
  const swapUsedKb = kb(containerSwapUsedBytes(hostSwapTotalKb, memory));

  const values = new Map<string, bigint>([
    ['MemTotal', totalKb], // the limit, at most host RAM (memoryMath)
    ['MemFree', freeKb], // MemTotal - usage and ancestors' headroom, at most MemAvailable
    ['MemAvailable', availableKb], // free + reclaimable file LRU and slab, at most the host's
    ['Buffers', 0n], // a memcg has no separate buffer counter: they are in Cached
    ['Cached', capped(s.fileBytes)], // page cache incl. tmpfs, excl. swap cache, like the kernel
    ['SwapCached', capped(s.swapCachedBytes)],
    ['Active', capped(s.activeAnonBytes + s.activeFileBytes)],
    ['Inactive', capped(s.inactiveAnonBytes + s.inactiveFileBytes)],
    ['Active(anon)', capped(s.activeAnonBytes)],
    ['Inactive(anon)', capped(s.inactiveAnonBytes)],
    ['Active(file)', capped(s.activeFileBytes)],
    ['Inactive(file)', capped(s.inactiveFileBytes)],
    ['Unevictable', capped(s.unevictableBytes)],
    ['SwapTotal', swapTotalKb],
    ['SwapFree', swapTotalKb - swapUsedKb], // >= 0: used is capped at the total (memoryMath)
    ['Dirty', capped(s.fileDirtyBytes)],
    ['Writeback', capped(s.fileWritebackBytes)],
    ['AnonPages', capped(s.anonBytes)],
    ['Mapped', capped(s.fileMappedBytes)],
    ['Shmem', capped(s.shmemBytes)],
    ['KReclaimable', capped(s.slabReclaimableBytes)], // the memcg counts no other reclaimable kernel memory
    ['Slab', capped(s.slabReclaimableBytes + s.slabUnreclaimableBytes)], // v1 has no slab counters: 0
    ['SReclaimable', capped(s.slabReclaimableBytes)],
    ['SUnreclaim', capped(s.slabUnreclaimableBytes)],
    ['KernelStack', capped(s.kernelStackBytes)],
    ['PageTables', capped(s.pageTablesBytes)],
    ['AnonHugePages', capped(s.anonHugeBytes)],
  ]);
  const commitLimitKb = containerCommitLimitKb(host, totalKb, swapTotalKb);
  if (commitLimitKb !== null) values.set('CommitLimit', commitLimitKb);
  return { values, totalKb, availableKb, swapUsedKb };
}

/** MemAvailable (free + reclaimable file LRU and slab, at most the host's) and MemFree (at most
 *  MemAvailable), each capped by `capped` at MemTotal. */
function availableAndFreeKb(
  host: HostMeminfo,
  memory: MemorySnapshot,
  capped: (bytes: bigint) => bigint,
): { availableKb: bigint; freeKb: bigint } {
  const s = memory.stat;
  const freeBytes = containerMemFreeBytes(host.get('MemTotal') ?? 0n, memory);
  let availableKb = capped(freeBytes + s.activeFileBytes + s.inactiveFileBytes + s.slabReclaimableBytes);
  const hostAvailableKb = host.get('MemAvailable');
  // A container cannot get memory the host does not have.
  if (hostAvailableKb !== undefined) availableKb = minBig(availableKb, hostAvailableKb);
  return { availableKb, freeKb: minBig(capped(freeBytes), availableKb) };
}

/** The kernel's RAM x overcommit_ratio + swap, with the container's RAM and swap; null when
 *  the host prints no CommitLimit. */
function containerCommitLimitKb(host: HostMeminfo, totalKb: bigint, swapTotalKb: bigint): bigint | null {
  const hostCommitLimitKb = host.get('CommitLimit');
  if (hostCommitLimitKb === undefined) return null;
  const hostTotalKb = host.get('MemTotal') ?? 0n;
  const hostRamPartKb = atLeastZero(hostCommitLimitKb - (host.get('SwapTotal') ?? 0n));
  const ramPartKb = hostTotalKb > 0n ? (hostRamPartKb * totalKb) / hostTotalKb : hostRamPartKb;
  return ramPartKb + swapTotalKb;
}

/** Host values we cannot compute per container pass through, at most the container's own
 *  figure they are part of (no more mlocked memory than unevictable). */
function passThroughBoundsKb(values: Map<string, bigint>, swapUsedKb: bigint): Map<string, bigint> {
  const v = (key: string): bigint => {
    const value = values.get(key);
    if (value === undefined) throw new Error(`meminfo view: no container value for ${key}`);
    return value;
  };
  const cached = v('Cached');
  const shmem = v('Shmem');
  const pageCacheWithoutShmem = atLeastZero(cached - shmem);
  return new Map<string, bigint>([
    ['Mlocked', v('Unevictable')],
    ['ShmemHugePages', shmem],
    ['ShmemPmdMapped', minBig(shmem, v('Mapped'))],
    ['FileHugePages', pageCacheWithoutShmem],
    ['FilePmdMapped', minBig(pageCacheWithoutShmem, v('Mapped'))],
    ['Zswap', swapUsedKb], // zswap holds swapped-out pages only
    ['Zswapped', swapUsedKb],
  ]);
}

/** One line in the kernel's layout (show_val_kb: key padded to 16, value in 8); HugePages_* and
 *  HardwareCorrupted pad to 19 and 5. A wider value widens the line, as printf does. */
export function formatMeminfoLine(key: string, value: bigint, unit: string): string {
  const narrow = key.startsWith('HugePages_') || key === 'HardwareCorrupted';
  const keyColumns = Math.max(narrow ? 19 : 16, key.length + 2);
  const valueColumns = narrow ? 5 : 8;
  const label = `${key}:`.padEnd(keyColumns);
  return `${label}${value.toString().padStart(valueColumns)}${unit === '' ? '' : ` ${unit}`}\n`;
}
