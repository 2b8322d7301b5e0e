/**
 * The container's memory and swap totals, derived once for every view that shows them
 * (meminfo, vmstat's nr_free_pages, swaps), so `free`, `vmstat` and `swapon --show` agree.
 *
 * Inputs are the host's /proc/meminfo values in kB and the cgroup's MemorySnapshot in bytes;
 * results are bytes, never negative. Views print kB as bytes / 1024 (floor), pages as
 * bytes / page size (floor).
 */
import type { MemorySnapshot } from '../cgroup/snapshot';

const KIB = 1024n;

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function atLeastZero(a: bigint): bigint {
  return a > 0n ? a : 0n;
}

/** MemTotal: the cgroup's limit, but never more RAM than the host has; no limit = the host's. */
export function containerMemTotalBytes(hostMemTotalKb: bigint, memory: MemorySnapshot): bigint {
  const hostBytes = hostMemTotalKb * KIB;
  return memory.limitBytes === null ? hostBytes : atLeastZero(min(memory.limitBytes, hostBytes));
}

/** MemFree: MemTotal minus what the cgroup is charged (page cache included, as the kernel
 *  charges it); 0 when usage is above the total (limit lowered below usage, or host-sized). */
export function containerMemFreeBytes(hostMemTotalKb: bigint, memory: MemorySnapshot): bigint {
  const free = containerMemTotalBytes(hostMemTotalKb, memory) - memory.usageBytes;
  // Rule: free memory is the least (limit - usage) over the cgroup and every ancestor with a limit.
  return atLeastZero(minOptional(free, memory.headroomBytes));
}

function minOptional(a: bigint, b: bigint | null | undefined): bigint {
  return b === null || b === undefined ? a : min(a, b);
}

/**
 * SwapTotal: the cgroup's swap limit, but never more than the host's swap devices hold;
 * no limit = the host's. When the kernel does not account swap for this cgroup
 * (swapAccounted false: v1 without memsw files, a kernel without swap accounting) the
 * container's swap use is unknowable, so it is shown no swap at all rather than host-sized
 * swap with a made-up usage.
 */
export function containerSwapTotalBytes(hostSwapTotalKb: bigint, memory: MemorySnapshot): bigint {
  if (!memory.swapAccounted) return 0n;
  const hostBytes = hostSwapTotalKb * KIB;
  return memory.swapLimitBytes === null
    ? hostBytes
    : atLeastZero(min(memory.swapLimitBytes, hostBytes));
}

/** SwapUsed: the cgroup's swap usage, capped at SwapTotal (a limit lowered below current use
 *  would otherwise make SwapFree negative), and at least SwapTotal - the swap headroom up the
 *  tree: swap siblings took from a shared ancestor's limit is used for this reader too, as
 *  their memory is in MemFree. So SwapFree, meminfo and /proc/swaps agree. */
export function containerSwapUsedBytes(hostSwapTotalKb: bigint, memory: MemorySnapshot): bigint {
  const total = containerSwapTotalBytes(hostSwapTotalKb, memory);
  const headroom = memory.swapHeadroomBytes;
  const takenUpTree = headroom === null || headroom === undefined ? 0n : total - headroom;
  return min(max(atLeastZero(memory.swapUsageBytes), takenUpTree), total);
}

/** SwapFree: SwapTotal - SwapUsed, never negative by construction. */
export function containerSwapFreeBytes(hostSwapTotalKb: bigint, memory: MemorySnapshot): bigint {
  return (
    containerSwapTotalBytes(hostSwapTotalKb, memory) -
    containerSwapUsedBytes(hostSwapTotalKb, memory)
  );
}
