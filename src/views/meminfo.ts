/**
 * /proc/meminfo for a container: every key of the host's file, in the host's order and the
 * kernel's format, with the memory the container can use in place of the host's.
 *
 * Sources, in kB (bytes / 1024, floor). "stat" is the cgroup's memory.stat (MemorySnapshot):
 *   MemTotal        limit, but at most the host's MemTotal; no limit = the host's (memoryMath)
 *   MemFree         MemTotal - usage, at most the least (limit - usage) of every ancestor with
 *                   a limit (memoryMath), then at most MemAvailable
 *   MemAvailable    MemFree + active_file + inactive_file + slab_reclaimable, at most MemTotal
 *                   and at most the host's MemAvailable. Always printed (after MemFree) even
 *                   when the host's kernel has no such line.
 *   Buffers         0: a memcg does not account block-device buffers apart from file pages;
 *                   they are inside Cached
 *   Cached          stat file: the memcg's page cache including tmpfs/shmem, as the kernel's
 *                   Cached includes Shmem. Swap cache is not in it (the kernel charges it to
 *                   the memcg only as NR_SWAPCACHE), as the kernel's Cached excludes it too
 *   SwapCached      stat swapcached (v1 total_swapcached)
 *   Active, Inactive             sum of the anon and file LRU lists of stat
 *   Active(anon) ... Unevictable the LRU lists of stat
 *   SwapTotal       the cgroup's swap limit, at most the host's SwapTotal; 0 when the kernel
 *                   does not account the cgroup's swap (memoryMath)
 *   SwapFree        SwapTotal - the cgroup's swap usage (or what ancestors' swap limits leave,
 *                   if less: memoryMath), same kB rounding as /proc/swaps
 *   Dirty, Writeback, AnonPages, Mapped, Shmem   stat file_dirty, file_writeback, anon,
 *                   file_mapped, shmem
 *   KReclaimable, SReclaimable, SUnreclaim, Slab  stat slab_reclaimable / _unreclaimable
 *                   (v2; v1 reports no slab: 0). KReclaimable = SReclaimable: the memcg has
 *                   no counter for the kernel's other reclaimable memory
 *   KernelStack, PageTables     stat kernel_stack, pagetables (v2; v1: 0)
 *   AnonHugePages   stat anon_thp (v1 total_rss_huge)
 *   CommitLimit     the host's RAM part of CommitLimit scaled by MemTotal / host MemTotal,
 *                   plus SwapTotal: the kernel's formula (RAM * overcommit_ratio + swap) with
 *                   the container's RAM and swap, the ratio inferred from the host's numbers
 *
 * Host values we cannot compute per container pass through, bounded by the container's own
 * figure they are part of (a container cannot have more mlocked memory than unevictable):
 *   Mlocked <= Unevictable; ShmemHugePages <= Shmem; ShmemPmdMapped <= min(Shmem, Mapped);
 *   FileHugePages <= Cached - Shmem; FilePmdMapped <= min(Cached - Shmem, Mapped);
 *   Zswap, Zswapped <= the container's swap in use (zswap holds swapped-out pages only).
 * Every other kB line (Committed_AS, VmallocUsed, Percpu, SecPageTables, NFS_Unstable, Bounce,
 * WritebackTmp, HardwareCorrupted, Hugetlb, Cma*, DirectMap*, any line a newer kernel adds)
 * passes through at most MemTotal: they are memory sizes, and no memory figure of the
 * container may exceed its total.
 * Passed through unchanged, because they are not amounts of memory: HugePages_* (counts of
 * huge pages), Hugepagesize (a page size), VmallocTotal and VmallocChunk (kernel virtual
 * address space).
 *
 * Invariants: no value is negative; MemFree <= MemAvailable <= MemTotal; every line is
 * <= MemTotal except those four, SwapTotal and SwapFree (swap space, not RAM) and CommitLimit
 * (includes swap): those may exceed MemTotal exactly as on a host.
 *
 * Where LXCFS differs, and why we chose otherwise:
 * - MemAvailable: we use LXCFS's current formula (free + file LRU + reclaimable slab), which
 *   excludes tmpfs (it sits on the anon LRU and cannot be dropped; LXCFS's older "free +
 *   cache" counted it). We add the bound by the host's MemAvailable: a container cannot get
 *   memory the host does not have, so on an overcommitted or unlimited-container host it
 *   would otherwise be promised memory that allocating would take from others or OOM.
 *   MemFree is not separately bounded by the host's MemFree: the host keeps most memory in
 *   page cache, so its MemFree is routinely tiny, and tools that compute used = total - free -
 *   buff/cache (procps before 4.0) would then call the container's unused limit "used".
 * - AnonPages: LXCFS prints active_anon + inactive_anon - shmem; we print the memcg's anon
 *   (v1 rss), which is the kernel's own AnonPages counter (NR_ANON_MAPPED) for the cgroup —
 *   the LRU difference drifts from it (e.g. swap cache sits on the anon LRU too).
 * - Slab, SReclaimable, SUnreclaim, SwapCached: LXCFS prints 0; v2 accounts them, so we show
 *   them (and free(1)'s buff/cache, which adds SReclaimable, then matches the cgroup's).
 * - Lines LXCFS passes through unchanged (Mlocked, Zswap, Committed_AS, DirectMap*, ...) are
 *   bounded here, so no line shows more memory than the container has.
 */
import type { MemorySnapshot } from '../cgroup/snapshot';
import type { HostMeminfo } from '../host/snapshot';
import {
  containerMemFreeBytes,
  containerMemTotalBytes,
  containerSwapTotalBytes,
  containerSwapUsedBytes,
} from './memoryMath';

const KIB = 1024n;

/** Lines that are not amounts of memory: never clamped to MemTotal. */
const NOT_MEMORY_AMOUNTS: ReadonlySet<string> = new Set([
  'Hugepagesize',
  'VmallocTotal',
  'VmallocChunk',
]);

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function kb(bytes: bigint): bigint {
  return bytes > 0n ? bytes / KIB : 0n;
}

export function renderMeminfo(host: HostMeminfo, memory: MemorySnapshot): string {
  const { values, swapUsedKb } = containerValuesKb(host, memory);
  const bounds = passThroughBoundsKb(values, swapUsedKb);
  const totalKb = values.get('MemTotal')!;

  let out = '';
  let printedAvailable = false;
  for (const line of host.lines) {
    let value: bigint;
    const own = values.get(line.key);
    const bound = bounds.get(line.key);
    if (own !== undefined) value = own;
    else if (bound !== undefined) value = min(line.value, bound);
    else if (line.unit !== 'kB' || NOT_MEMORY_AMOUNTS.has(line.key)) value = line.value;
    else value = min(line.value, totalKb);
    out += formatMeminfoLine(line.key, value, line.unit);
    if (line.key === 'MemAvailable') printedAvailable = true;
    // Kernels before 3.14 have no MemAvailable; print it where newer kernels do.
    if (line.key === 'MemFree' && host.get('MemAvailable') === undefined) {
      out += formatMeminfoLine('MemAvailable', values.get('MemAvailable')!, 'kB');
      printedAvailable = true;
    }
  }
  if (!printedAvailable) {
    // A host file without MemFree (never seen): still honour "MemAvailable is always there".
    out = formatMeminfoLine('MemAvailable', values.get('MemAvailable')!, 'kB') + out;
  }
  return out;
}

/** The values the container's own accounting gives, by meminfo key, in kB; and its swap use. */
function containerValuesKb(
  host: HostMeminfo,
  memory: MemorySnapshot,
): { values: Map<string, bigint>; swapUsedKb: bigint } {
  const hostTotalKb = host.get('MemTotal') ?? 0n;
  const hostSwapTotalKb = host.get('SwapTotal') ?? 0n;
  const s = memory.stat;
  const totalKb = kb(containerMemTotalBytes(hostTotalKb, memory));
  const capped = (bytes: bigint) => min(kb(bytes), totalKb);

  let availableKb = capped(
    containerMemFreeBytes(hostTotalKb, memory) +
      s.activeFileBytes +
      s.inactiveFileBytes +
      s.slabReclaimableBytes,
  );
  const hostAvailableKb = host.get('MemAvailable');
  if (hostAvailableKb !== undefined) availableKb = min(availableKb, hostAvailableKb);
  const freeKb = min(capped(containerMemFreeBytes(hostTotalKb, memory)), availableKb);

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
    ['KReclaimable', capped(s.slabReclaimableBytes)], // no memcg counter for the kernel's other kinds
    ['Slab', capped(s.slabReclaimableBytes + s.slabUnreclaimableBytes)],
    ['SReclaimable', capped(s.slabReclaimableBytes)],
    ['SUnreclaim', capped(s.slabUnreclaimableBytes)],
    ['KernelStack', capped(s.kernelStackBytes)],
    ['PageTables', capped(s.pageTablesBytes)],
    ['AnonHugePages', capped(s.anonHugeBytes)],
  ]);

  const hostCommitLimitKb = host.get('CommitLimit');
  if (hostCommitLimitKb !== undefined) {
    const hostRamPartKb = hostCommitLimitKb > hostSwapTotalKb ? hostCommitLimitKb - hostSwapTotalKb : 0n;
    const ramPartKb = hostTotalKb > 0n ? (hostRamPartKb * totalKb) / hostTotalKb : hostRamPartKb;
    values.set('CommitLimit', ramPartKb + swapTotalKb);
  }
  return { values, swapUsedKb };
}

/** Upper bounds for host values that pass through (see the header). */
function passThroughBoundsKb(values: Map<string, bigint>, swapUsedKb: bigint): Map<string, bigint> {
  const v = (key: string) => values.get(key)!;
  const cached = v('Cached');
  const shmem = v('Shmem');
  const pageCacheWithoutShmem = cached > shmem ? cached - shmem : 0n;
  return new Map<string, bigint>([
    ['Mlocked', v('Unevictable')],
    ['ShmemHugePages', shmem],
    ['ShmemPmdMapped', min(shmem, v('Mapped'))],
    ['FileHugePages', pageCacheWithoutShmem],
    ['FilePmdMapped', min(pageCacheWithoutShmem, v('Mapped'))],
    ['Zswap', swapUsedKb],
    ['Zswapped', swapUsedKb],
  ]);
}

/**
 * One line in the kernel's layout (fs/proc/meminfo.c show_val_kb: the key padded to 16
 * columns, the value right-aligned in 8, " kB"). Two kernel lines differ:
 * "HugePages_Total:   %5lu" (and _Free/_Rsvd/_Surp) and "HardwareCorrupted: %5lu kB": the key
 * padded to 19 columns and the value in 5. A value wider than its field just widens the line,
 * as printf does ("VmallocTotal:   34359738367 kB"). At least one space follows the colon.
 */
export function formatMeminfoLine(key: string, value: bigint, unit: string): string {
  const narrow = key.startsWith('HugePages_') || key === 'HardwareCorrupted';
  const keyColumns = Math.max(narrow ? 19 : 16, key.length + 2);
  const valueColumns = narrow ? 5 : 8;
  const label = `${key}:`.padEnd(keyColumns);
  return `${label}${value.toString().padStart(valueColumns)}${unit === '' ? '' : ` ${unit}`}\n`;
}
