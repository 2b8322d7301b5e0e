/** Hand-made memory snapshots for the view tests: everything zero or unlimited unless overridden. */
import type { MemorySnapshot, MemoryStat } from '../../src/cgroup/snapshot';

/** A memory.stat with every counter at zero and no events. */
export function emptyMemoryStat(overrides: Partial<MemoryStat> = {}): MemoryStat {
  return {
    anonBytes: 0n, fileBytes: 0n, shmemBytes: 0n, fileMappedBytes: 0n, fileDirtyBytes: 0n,
    fileWritebackBytes: 0n, swapCachedBytes: 0n, activeAnonBytes: 0n, inactiveAnonBytes: 0n,
    activeFileBytes: 0n, inactiveFileBytes: 0n, unevictableBytes: 0n, slabReclaimableBytes: 0n,
    slabUnreclaimableBytes: 0n, kernelStackBytes: 0n, pageTablesBytes: 0n, anonHugeBytes: 0n,
    events: new Map(), ...overrides,
  };
}

/** A cgroup with no memory or swap limit that has used nothing yet (swap accounted). */
export function memorySnapshot(overrides: Partial<MemorySnapshot> = {}): MemorySnapshot {
  return {
    limitBytes: null,
    usageBytes: 0n,
    swapLimitBytes: null,
    swapUsageBytes: 0n,
    swapAccounted: true,
    stat: emptyMemoryStat(),
    ...overrides,
  };
}
