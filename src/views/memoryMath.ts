// The container's memory and swap totals in bytes, shared by meminfo, vmstat and swaps so that
// free, vmstat and swapon agree (docs/views.md#meminfo).
import type { MemorySnapshot } from '../cgroup/snapshot';
import { atLeastZero, maxBig, minBig, tighter } from '../cgroup/bigints';

const KIB = 1024n;

/** MemTotal: the cgroup's limit, at most the host's RAM; no limit = the host's. */
export function containerMemTotalBytes(hostMemTotalKb: bigint, memory: MemorySnapshot): bigint {
  const hostBytes = hostMemTotalKb * KIB;
  return memory.limitBytes === null ? hostBytes : atLeastZero(minBig(memory.limitBytes, hostBytes));
}

/** MemFree: MemTotal - usage (page cache included, as the kernel charges it), at most the least
 *  limit - usage of any ancestor, since siblings' usage fills a shared ancestor's limit. */
export function containerMemFreeBytes(hostMemTotalKb: bigint, memory: MemorySnapshot): bigint {
  const free = containerMemTotalBytes(hostMemTotalKb, memory) - memory.usageBytes;
  return atLeastZero(tighter(free, memory.headroomBytes));
}

/** SwapTotal: the cgroup's swap limit, at most the host's swap; no limit = the host's. 0 when
 *  swap is not accounted for the cgroup: its use would be unknowable. */
export function containerSwapTotalBytes(hostSwapTotalKb: bigint, memory: MemorySnapshot): bigint {
  if (!memory.swapAccounted) return 0n;
  const hostBytes = hostSwapTotalKb * KIB;
  return memory.swapLimitBytes === null ? hostBytes : atLeastZero(minBig(memory.swapLimitBytes, hostBytes));
}

/** SwapUsed: the cgroup's swap use, at least what ancestors' swap limits have taken (as MemFree
 *  does for memory), at most SwapTotal so that SwapFree is never negative. */
export function containerSwapUsedBytes(hostSwapTotalKb: bigint, memory: MemorySnapshot): bigint {
  const total = containerSwapTotalBytes(hostSwapTotalKb, memory);
  const headroom = memory.swapHeadroomBytes;
  const takenUpTree = headroom === null || headroom === undefined ? 0n : total - headroom;
  return minBig(maxBig(atLeastZero(memory.swapUsageBytes), takenUpTree), total);
}

/** SwapFree: SwapTotal - SwapUsed. */
export function containerSwapFreeBytes(hostSwapTotalKb: bigint, memory: MemorySnapshot): bigint {
  return containerSwapTotalBytes(hostSwapTotalKb, memory) - containerSwapUsedBytes(hostSwapTotalKb, memory);
}
