/**
 * The normalised, typed picture of one cgroup that every view is derived from.
 *
 * Readers in `v1/` and `v2/` fill these; views never know which version they got. Every byte
 * count and every cumulative counter is a `bigint`: cgroup values exceed 2^53 (v1's "unlimited"
 * is 9223372036854771712, a root cgroup's CPU time in ns passes 2^53 after ~104 CPU-days).
 * A limit of `null` means "no limit anywhere up the tree" — "unlimited" is never a number here.
 */

/** Memory as the cgroup accounts it. All values in bytes. */
export interface MemorySnapshot {
  /** Tightest memory limit of the cgroup and its ancestors; null when none is set. */
  limitBytes: bigint | null;
  /** Memory charged to the cgroup now (v1 memory.usage_in_bytes, v2 memory.current). */
  usageBytes: bigint;
  /**
   * Memory the cgroup can still be charged: the least (limit - usage) over the cgroup and every
   * ancestor with a limit, since a sibling's usage fills a shared parent's limit too (v1: and
   * the memory+swap room, which every charge takes from as well). null (or absent) = no limit
   * anywhere up the tree.
   */
  headroomBytes?: bigint | null;
  /**
   * Tightest swap limit of the cgroup and its ancestors, swap only (not memory+swap);
   * null when swap is not limited. v1 derives it from memsw limit - memory limit.
   */
  swapLimitBytes: bigint | null;
  /** Swap in use by the cgroup (v2 memory.swap.current; v1 total_swap, else memsw.usage - usage). */
  swapUsageBytes: bigint;
  /**
   * Swap the cgroup can still use, the same walk as headroomBytes: v2 the least swap.max -
   * swap.current; v1 the least memsw limit - memsw usage (v1 limits memory+swap together).
   * null (or absent) = no swap limit anywhere up the tree.
   */
  swapHeadroomBytes?: bigint | null;
  /** False when the kernel does not account swap for this cgroup at all (no memsw / swap files). */
  swapAccounted: boolean;
  /** Hierarchical (this cgroup and its descendants) statistics, normalised names. */
  stat: MemoryStat;
}

/** memory.stat normalised across versions; bytes unless the name says otherwise. */
export interface MemoryStat {
  anonBytes: bigint; // v1 total_rss (+ total_rss_huge is included in rss on v1), v2 anon
  fileBytes: bigint; // v1 total_cache, v2 file
  shmemBytes: bigint; // v1 total_shmem, v2 shmem
  fileMappedBytes: bigint; // v1 total_mapped_file, v2 file_mapped
  fileDirtyBytes: bigint; // v1 total_dirty, v2 file_dirty
  fileWritebackBytes: bigint; // v1 total_writeback, v2 file_writeback
  swapCachedBytes: bigint; // v1 total_swapcached, v2 swapcached (0 where absent)
  activeAnonBytes: bigint;
  inactiveAnonBytes: bigint;
  activeFileBytes: bigint;
  inactiveFileBytes: bigint;
  unevictableBytes: bigint;
  slabReclaimableBytes: bigint; // v2 slab_reclaimable; v1 has none in memory.stat: 0
  slabUnreclaimableBytes: bigint; // v2 slab_unreclaimable; v1: 0
  kernelStackBytes: bigint; // v2 kernel_stack; v1: 0
  pageTablesBytes: bigint; // v2 pagetables; v1: 0
  anonHugeBytes: bigint; // v1 total_rss_huge, v2 anon_thp
  /** Event counters (counts, not bytes): pgfault, pgmajfault, pgpgin, pgpgout (v1 only),
   *  workingset_*, pgscan, pgsteal, ... keyed by the kernel's vmstat name where one exists. */
  events: Map<string, bigint>;
}

/** CPU placement and limits. */
export interface CpuLimits {
  /** Host CPU ids the cgroup may run on (effective cpuset), ascending; null = no cpuset info. */
  cpusetCpus: number[] | null;
  /** Tightest CFS quota of the cgroup and its ancestors, in CPUs (quota/period); null = none. */
  quotaCpus: number | null;
}

/** CPU time the cgroup has used, cumulative since it was created. */
export interface CpuUsage {
  userNs: bigint;
  systemNs: bigint;
  /**
   * Per host CPU id (index = host CPU id), user/system in ns. v1 cpuacct gives it
   * (cpuacct.usage_all); v2 has no per-CPU split: null.
   */
  perCpu: Array<{ userNs: bigint; systemNs: bigint }> | null;
}

/**
 * Block I/O the cgroup did, per device (v1 blkio.throttle.*_recursive, v2 io.stat): cumulative
 * since the cgroup was made, this cgroup and its descendants. Counted per disk (the request
 * queue), never per partition. Devices are in the order the kernel listed them.
 */
export interface BlockIoSnapshot {
  devices: BlockDeviceIo[];
}

export interface BlockDeviceIo {
  major: number;
  minor: number;
  readBytes: bigint;
  writeBytes: bigint;
  discardBytes: bigint;
  /** I/Os (bios) as the cgroup counts them; v1 counts a split bio once per part. */
  readIos: bigint;
  writeIos: bigint;
  discardIos: bigint;
}

/** Task states of the cgroup (threads, counted the way the kernel's loadavg counts). */
export interface TaskCounts {
  /** Threads in state R. */
  running: number;
  /** Threads in state D (uninterruptible). */
  blocked: number;
  /** All threads. */
  total: number;
  /** True when counting stopped at the per-sample bound: the counts are a lower bound. */
  truncated: boolean;
}

/** Where a cgroup lives, per controller, as absolute directories on this host. */
export interface CgroupLocation {
  /** A stable name for the container this cgroup is: its path in the memory hierarchy
   *  (v1 memory controller, or the v2 unified path). "/" is the host's root cgroup. */
  key: string;
  version: 1 | 2;
  /** Absolute directory of the cgroup for each controller this machine has, e.g.
   *  memory -> /sys/fs/cgroup/memory/kubepods/pod1 (v1) or /sys/fs/cgroup/kubepods/pod1 (v2). */
  dirs: Partial<Record<Controller, string>>;
  /** The hierarchy root directory for each controller (to walk ancestors up to it). */
  roots: Partial<Record<Controller, string>>;
  /**
   * The cgroup's directory in the v2 (unified) hierarchy, whether or not any controller is
   * enabled there: cgroup.procs, cgroup.threads and cpu.stat live in every v2 cgroup. null when
   * the machine has no cgroup2 mount or the caller has no "0::" line. A controller whose dir
   * equals this one is on v2 (see controllerVersion in hierarchy.ts).
   */
  unifiedDir: string | null;
  /**
   * CPU ids in this host's cgroup files are below this (the host's possible CPUs): an id at or
   * past it is a malformed file, never an index. Absent = MAX_CPU_COUNT (cgroup/cpulist.ts).
   */
  cpuCountLimit?: number;
}

export type Controller = 'memory' | 'cpu' | 'cpuacct' | 'cpuset' | 'blkio' | 'io' | 'pids';

/** A cgroup file that could not be read or parsed: names the cgroup directory and the file. */
export class CgroupParseError extends Error {
  constructor(
    readonly dir: string,
    readonly file: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`${dir}/${file}: ${reason}`, options);
    this.name = 'CgroupParseError';
  }
}

/** One line of a PSI file: averages in hundredths of a percent (the kernel prints two decimals). */
export interface PressureLine {
  avg10Centi: number;
  avg60Centi: number;
  avg300Centi: number;
  /** Total stall time in µs (cumulative: may pass 2^53). */
  totalUs: bigint;
}

/** A PSI file (cpu.pressure, memory.pressure, io.pressure, /proc/pressure/*). */
export interface PressureSnapshot {
  some: PressureLine;
  /** Absent from cpu pressure before kernel 5.13. */
  full: PressureLine | null;
}

export type PressureResource = 'cpu' | 'memory' | 'io';
