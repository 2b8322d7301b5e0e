// cgroup v2 memory controller -> MemorySnapshot. v2 has no hierarchical_* lines, so we walk the
// ancestors for the smallest memory.max ourselves. memory.high is not a limit (the kernel
// throttles above it but never OOM-kills), so it does not shrink MemTotal. A cgroup without
// memory.* files is charged to the nearest ancestor that has them: we read that one.
import type { MemorySnapshot, MemoryStat } from '../snapshot';
import {
  parseByteLimit,
  readFlatKeyed,
  readSingleValue,
  selfAndAncestors,
} from '../parse';
import { atLeastZero, tighter } from '../bigints';
import { readLimitFile } from '../limitCache';

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
  const accounting = readAccountingStat(selfAndAncestors(dir, root));
  if (accounting === null) return null;
  const stat = v2Stat(accounting.raw);

  // The root cgroup has no memory.current; the kernel's own notion of the root's usage
  // (v1 mem_cgroup_usage) is anon + file, so use that.
  const usageBytes = atLeastZero(readSingleValue(accounting.dir, 'memory.current') ?? stat.anonBytes + stat.fileBytes);

  // memory.swap.current exists on every non-root cgroup when the kernel accounts swap;
  // without it (swapaccount=0 / cgroup.memory=noswap, or the root) swap is not accounted.
  const swapCurrent = readSingleValue(accounting.dir, 'memory.swap.current');
  // Limits and headroom: smallest over the accounting cgroup and every ancestor ("max" and
  // absent = none; the root has no memory.max, so it is not read); a sibling's usage fills a
  // shared ancestor's limit, hence the headroom.
  const rootDir = root.length > 1 ? root.replace(/\/+$/, '') : root;
  const levels = accounting.selfAndAncestors.filter((level) => level !== rootDir);
  const memoryLevels = readLimitChain(levels, 'memory.max', 'memory.current', usageBytes);
  const swapLevels = readLimitChain(levels, 'memory.swap.max', 'memory.swap.current', swapCurrent);
  return {
    limitBytes: memoryLevels.limitBytes,
    usageBytes,
    headroomBytes: memoryLevels.headroomBytes,
    swapHeadroomBytes: swapCurrent === null ? null : swapLevels.headroomBytes,
    swapLimitBytes: swapCurrent === null ? null : swapLevels.limitBytes,
    swapUsageBytes: atLeastZero(swapCurrent ?? 0n),
    swapAccounted: swapCurrent !== null,
    stat,
  };
}

/** The nearest of `chain` (a cgroup, then its ancestors) that has memory.stat: the cgroup its
 *  memory is charged to. null when none has it. */
function readAccountingStat(
  chain: string[],
): { dir: string; raw: ReadonlyMap<string, bigint>; selfAndAncestors: string[] } | null {
  for (const [index, dir] of chain.entries()) {
    const raw = readFlatKeyed(dir, 'memory.stat');
    if (raw !== null) return { dir, raw, selfAndAncestors: chain.slice(index) };
  }
  return null;
}

function v2Stat(raw: ReadonlyMap<string, bigint>): MemoryStat {
  const byteValue = (name: string): bigint => atLeastZero(raw.get(name) ?? 0n);
  return {
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
}

function readMaxFile(dir: string, self: string, file: string): bigint | null {
  const text = readLimitFile(dir, self, file);
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
    const limit = readMaxFile(level, levels[0], limitFile);
    if (limit === null) continue;
    const known = level === levels[0] ? firstUsage : null;
    const usage = atLeastZero(known ?? readSingleValue(level, usageFile) ?? 0n);
    limitBytes = tighter(limitBytes, limit);
    headroomBytes = tighter(headroomBytes, atLeastZero(limit - usage));
  }
  return { limitBytes, headroomBytes };
}

