/**
 * cgroup v2 memory controller -> MemorySnapshot.
 *
 * Files (Documentation/admin-guide/cgroup-v2.rst): memory.current, memory.max, memory.stat,
 * memory.swap.current, memory.swap.max. All of them except memory.stat exist only on non-root
 * cgroups. memory.stat and memory.current already include the cgroup's descendants.
 *
 * v2 has no hierarchical_* lines: the effective limit is the smallest memory.max of the cgroup
 * and its ancestors, which we walk ourselves. memory.high is not a limit (the kernel throttles
 * and reclaims above it, but never refuses or OOM-kills), so it does not shrink MemTotal.
 *
 * A cgroup whose parent does not enable the memory controller for it (no "memory" in the
 * parent's cgroup.subtree_control) has no memory.* files; its memory is charged to the nearest
 * ancestor that has them, so that ancestor is what we read.
 */
import type { MemorySnapshot, MemoryStat } from '../snapshot';
import {
  nonNegative,
  parseByteLimit,
  readFlatKeyed,
  readOptionalFile,
  readSingleValue,
  selfAndAncestors,
  tighter,
} from '../parse';

/** v2 memory.stat names that are byte gauges (the rest are event counts). */
const V2_BYTE_KEYS: ReadonlySet<string> = new Set([
  'anon', 'file', 'kernel', 'kernel_stack', 'pagetables', 'sec_pagetables', 'percpu', 'sock',
  'vmalloc', 'shmem', 'zswap', 'zswapped', 'file_mapped', 'file_dirty', 'file_writeback',
  'swapcached', 'anon_thp', 'file_thp', 'shmem_thp', 'inactive_anon', 'active_anon',
  'inactive_file', 'active_file', 'unevictable', 'slab_reclaimable', 'slab_unreclaimable',
  'slab', 'hugetlb', 'zswap_incomp',
]);

/**
 * Read the v2 memory state of the cgroup at `dir` in the hierarchy mounted at `root`.
 * Returns null when neither the cgroup nor an ancestor has memory.stat (no memory
 * controller); throws CgroupParseError when `dir` is gone or a file is malformed.
 */
export function readV2Memory(dir: string, root: string): MemorySnapshot | null {
  const chain = selfAndAncestors(dir, root);
  let index = -1;
  let raw: Map<string, bigint> | null = null;
  for (let i = 0; i < chain.length && raw === null; i++) {
    raw = readFlatKeyed(chain[i]!, 'memory.stat');
    index = i;
  }
  if (raw === null) return null;
  const accountingDir = chain[index]!;
  const byteValue = (name: string): bigint => {
    const value = raw.get(name) ?? 0n;
    return value > 0n ? value : 0n;
  };

  const stat: MemoryStat = {
    anonBytes: byteValue('anon'),
    fileBytes: byteValue('file'),
    shmemBytes: byteValue('shmem'),
    fileMappedBytes: byteValue('file_mapped'),
    fileDirtyBytes: byteValue('file_dirty'),
    fileWritebackBytes: byteValue('file_writeback'),
    swapCachedBytes: byteValue('swapcached'), // since 5.x; 0 on older kernels
    activeAnonBytes: byteValue('active_anon'),
    inactiveAnonBytes: byteValue('inactive_anon'),
    activeFileBytes: byteValue('active_file'),
    inactiveFileBytes: byteValue('inactive_file'),
    unevictableBytes: byteValue('unevictable'),
    slabReclaimableBytes: byteValue('slab_reclaimable'),
    slabUnreclaimableBytes: byteValue('slab_unreclaimable'),
    kernelStackBytes: byteValue('kernel_stack'),
    pageTablesBytes: byteValue('pagetables'),
    anonHugeBytes: byteValue('anon_thp'),
    // v2 names its events after /proc/vmstat already (pgfault, workingset_refault_file, ...).
    events: new Map([...raw].filter(([key]) => !V2_BYTE_KEYS.has(key))),
  };

  // The root cgroup has no memory.current; the kernel's own notion of the root's usage
  // (v1 mem_cgroup_usage) is anon + file, so use that.
  const usageBytes = nonNegative(
    readSingleValue(accountingDir, 'memory.current') ?? byteValue('anon') + byteValue('file'),
  );

  // memory.swap.current exists on every non-root cgroup when the kernel accounts swap;
  // without it (swapaccount=0 / cgroup.memory=noswap, or the root) swap is not accounted.
  const swapCurrent = readSingleValue(accountingDir, 'memory.swap.current');
  // Limits and headroom: smallest over the accounting cgroup and every ancestor ("max" and
  // absent = none; the root has no memory.max, so it is not read); a sibling's usage fills a
  // shared ancestor's limit, hence the headroom.
  const rootDir = root.length > 1 ? root.replace(/\/+$/, '') : root;
  const levels = chain.slice(index).filter((level) => level !== rootDir);
  const memoryLevels = readLimitChain(levels, 'memory.max', 'memory.current', usageBytes);
  const swapLevels = readLimitChain(levels, 'memory.swap.max', 'memory.swap.current', swapCurrent);
  const limitBytes = memoryLevels.limitBytes;
  const swapLimitBytes = swapLevels.limitBytes;
  return {
    limitBytes,
    usageBytes,
    headroomBytes: memoryLevels.headroomBytes,
    swapHeadroomBytes: swapCurrent === null ? null : swapLevels.headroomBytes,
    swapLimitBytes: swapCurrent === null ? null : swapLimitBytes,
    swapUsageBytes: swapCurrent === null || swapCurrent < 0n ? 0n : swapCurrent,
    swapAccounted: swapCurrent !== null,
    stat,
  };
}

function readMaxFile(dir: string, file: string): bigint | null {
  const text = readOptionalFile(dir, file);
  return text === null ? null : parseByteLimit(text, dir, file);
}

/** The least limit and the least (limit - usage) over `levels` (the first one's usage is
 *  `firstUsage` when known); a level without a limit adds nothing, a limit without a usage file
 *  counts as nothing used. */
function readLimitChain(
  levels: string[],
  limitFile: string,
  usageFile: string,
  firstUsage: bigint | null,
): { limitBytes: bigint | null; headroomBytes: bigint | null } {
  let limitBytes: bigint | null = null;
  let headroomBytes: bigint | null = null;
  for (const level of levels) {
    const limit = readMaxFile(level, limitFile);
    if (limit === null) continue;
    const known = level === levels[0] ? firstUsage : null;
    const usage = nonNegative(known ?? readSingleValue(level, usageFile) ?? 0n);
    limitBytes = tighter(limitBytes, limit);
    headroomBytes = tighter(headroomBytes, limit > usage ? limit - usage : 0n);
  }
  return { limitBytes, headroomBytes };
}

