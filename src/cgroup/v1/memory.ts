// cgroup v1 memory controller -> MemorySnapshot. We read memory.stat's total_* values: a
// container's usage includes its child cgroups, as memory.usage_in_bytes does. memory.memsw.*
// (memory+swap) is absent when the kernel does not account swap.
import { CgroupParseError } from '../snapshot';
import type { MemorySnapshot, MemoryStat } from '../snapshot';
import { parseSingleValue, readFlatKeyed, readOptionalFile, readSingleValue, selfAndAncestors, v1LimitOrNull } from '../parse';
import { readLimitFile } from '../limitCache';
import { atLeastZero, tighter } from '../bigints';

/** v1 memory.stat names that are byte gauges (the rest are event counts). */
const V1_BYTE_KEYS: ReadonlySet<string> = new Set([
  'cache', 'rss', 'rss_huge', 'shmem', 'mapped_file', 'dirty', 'writeback', 'swap', 'swapcached',
  'inactive_anon', 'active_anon', 'inactive_file', 'active_file', 'unevictable',
]);

/**
 * Read the v1 memory cgroup at `dir` (in the hierarchy mounted at `root`). Returns null when
 * `dir` has no memory.stat (not a memory cgroup); throws CgroupParseError when `dir` is gone or
 * a file is malformed.
 */
export function readV1Memory(dir: string, root: string = dir): MemorySnapshot | null {
  const raw = readFlatKeyed(dir, 'memory.stat');
  if (raw === null) return null;
  const total = (name: string): bigint => {
    // total_* is always printed on v1; a stat without it (never seen) falls back to local.
    return atLeastZero(raw.get(`total_${name}`) ?? raw.get(name) ?? 0n);
  };

  const stat: MemoryStat = {
    anonBytes: total('rss'), // includes rss_huge: THP pages are counted in rss too
    fileBytes: total('cache'),
    shmemBytes: total('shmem'),
    fileMappedBytes: total('mapped_file'),
    fileDirtyBytes: total('dirty'),
    fileWritebackBytes: total('writeback'),
    swapCachedBytes: total('swapcached'),
    activeAnonBytes: total('active_anon'),
    inactiveAnonBytes: total('inactive_anon'),
    activeFileBytes: total('active_file'),
    inactiveFileBytes: total('inactive_file'),
    unevictableBytes: total('unevictable'),
    // v1 has no kernel-memory breakdown (memory.kmem.usage_in_bytes is one sum): 0.
    slabReclaimableBytes: 0n,
    slabUnreclaimableBytes: 0n,
    kernelStackBytes: 0n,
    pageTablesBytes: 0n,
    anonHugeBytes: total('rss_huge'),
    events: v1Events(raw),
  };

  // hierarchical_memory_limit already is the minimum over the cgroup and its ancestors; the
  // cgroup's own limit file is only a fallback for a memory.stat without it.
  const hierarchicalLimit =
    raw.get('hierarchical_memory_limit') ?? readSingleValue(dir, 'memory.limit_in_bytes');
  const limitBytes = hierarchicalLimit === null ? null : v1LimitOrNull(hierarchicalLimit);

  // A cgroup's usage_in_bytes is its page counter; the root memcg has no counter of its own
  // and the kernel derives its usage as cache + rss (mem_cgroup_usage): do the same if absent.
  const usageBytes = atLeastZero(readSingleValue(dir, 'memory.usage_in_bytes') ?? total('cache') + total('rss'));

  const swap = readV1Swap(dir, raw, limitBytes, usageBytes);
  // No limit anywhere (the kernel's own walk says so): no ancestor to read.
  const memoryHeadroom = limitBytes === null ? null : readV1Headroom(dir, root, 'memory', usageBytes);
  const swapHeadroomBytes = swap.swapLimitBytes === null ? null : readV1Headroom(dir, root, 'memory.memsw', null);
  // A charge counts in memsw too (swapping out does not lower memsw): memsw room bounds memory.
  const headroomBytes = tighter(memoryHeadroom, swapHeadroomBytes);
  return { limitBytes, usageBytes, headroomBytes, ...swap, swapHeadroomBytes, stat };
}

/**
 * The least (limit - usage) of `prefix`.limit_in_bytes / usage_in_bytes over `dir` and the
 * ancestors its charges reach: a charge goes up to a parent only when that parent has
 * use_hierarchy 1 (always, since 5.11), which is where the kernel's hierarchical_* walk stops
 * too. The root is never read: it cannot have a limit. `ownUsage`: dir's usage, if known.
 */
function readV1Headroom(dir: string, root: string, prefix: 'memory' | 'memory.memsw', ownUsage: bigint | null): bigint | null {
  let headroom: bigint | null = null;
  const rootDir = root.length > 1 ? root.replace(/\/+$/, '') : root;
  for (const level of selfAndAncestors(dir, root)) {
    if (level === rootDir) break;
    if (level !== dir && !chargesReach(level)) break;
    const limitBytes = readV1LimitAt(level, dir, `${prefix}.limit_in_bytes`);
    if (limitBytes === null) continue;
    const usage = level === dir && ownUsage !== null ? ownUsage : readSingleValue(level, `${prefix}.usage_in_bytes`);
    const usageBytes = atLeastZero(usage ?? 0n);
    headroom = tighter(headroom, atLeastZero(limitBytes - usageBytes));
  }
  return headroom;
}

/** A v1 byte limit file of `level`, null when unlimited or absent (an ancestor's shared for a while: limitCache.ts). */
function readV1LimitAt(level: string, self: string, file: string): bigint | null {
  const text = readLimitFile(level, self, file);
  return text === null ? null : v1LimitOrNull(parseSingleValue(text, level, file));
}

/** use_hierarchy per ancestor, remembered: the kernel refuses to change it while the cgroup
 *  has children, and an ancestor has one (the reader's). Bounded: cleared when full. */
const useHierarchyByDir = new Map<string, boolean>();
const USE_HIERARCHY_CACHE_ENTRIES = 4096;

function chargesReach(ancestor: string): boolean {
  let reach = useHierarchyByDir.get(ancestor);
  if (reach === undefined) {
    reach = readOptionalFile(ancestor, 'memory.use_hierarchy')?.trim() !== '0';
    if (useHierarchyByDir.size >= USE_HIERARCHY_CACHE_ENTRIES) useHierarchyByDir.clear();
    useHierarchyByDir.set(ancestor, reach);
  }
  return reach;
}

/** Event counters by their /proc/vmstat name: total_pgfault -> pgfault, ... */
function v1Events(raw: ReadonlyMap<string, bigint>): Map<string, bigint> {
  const events = new Map<string, bigint>();
  for (const [key, value] of raw) {
    if (!key.startsWith('total_')) continue;
    const name = key.slice('total_'.length);
    if (!V1_BYTE_KEYS.has(name)) events.set(name, value);
  }
  return events;
}

function readV1Swap(
  dir: string,
  raw: ReadonlyMap<string, bigint>,
  limitBytes: bigint | null,
  usageBytes: bigint,
): Pick<MemorySnapshot, 'swapLimitBytes' | 'swapUsageBytes' | 'swapAccounted'> {
  // The kernel prints hierarchical_memsw_limit only when it accounts swap; memory.memsw.*
  // files are the fallback signal for a memory.stat without hierarchical lines.
  let memswLimit = raw.get('hierarchical_memsw_limit') ?? null;
  if (memswLimit === null) {
    memswLimit = readSingleValue(dir, 'memory.memsw.limit_in_bytes');
    if (memswLimit === null) {
      return { swapLimitBytes: null, swapUsageBytes: 0n, swapAccounted: false };
    }
  }
  const memswLimitBytes = v1LimitOrNull(memswLimit);

  // v1 limits memory+swap together; swap alone may use what memsw allows beyond memory.
  // (The kernel enforces memsw >= memory limit on every cgroup, so this is >= 0 in practice.)
  let swapLimitBytes: bigint | null = null;
  if (memswLimitBytes !== null) {
    swapLimitBytes = atLeastZero(memswLimitBytes - (limitBytes ?? 0n));
  }

  // total_swap is the exact hierarchical swap counter; memsw.usage - usage is the fallback.
  let swapUsageBytes = raw.get('total_swap') ?? null;
  if (swapUsageBytes === null) {
    const memswUsage = readSingleValue(dir, 'memory.memsw.usage_in_bytes');
    if (memswUsage === null) {
      const why = 'missing although memory.memsw.limit_in_bytes exists';
      throw new CgroupParseError(dir, 'memory.memsw.usage_in_bytes', why);
    }
    swapUsageBytes = memswUsage - usageBytes;
  }
  return {
    swapLimitBytes,
    swapUsageBytes: atLeastZero(swapUsageBytes),
    swapAccounted: true,
  };
}
