import { describe, expect, it } from 'vitest';
import { readMemory } from '../../src/cgroup/read';
import { CgroupParseError, type MemorySnapshot } from '../../src/cgroup/snapshot';
import { FIXTURES, MIB, v1Location, v2Location } from './helpers';

function read(loc: Parameters<typeof readMemory>[0]): MemorySnapshot {
  const memory = readMemory(loc);
  if (memory === null) throw new Error('expected a memory snapshot');
  return memory;
}

describe('readMemory on cgroup v1', () => {
  it('reads a 256 MiB limit with memory+swap accounting', () => {
    const m = read(v1Location('v1', '/limited'));
    expect(m.limitBytes).toBe(256n * MIB);
    expect(m.usageBytes).toBe(100n * MIB);
    expect(m.swapAccounted).toBe(true);
    expect(m.swapLimitBytes).toBe(256n * MIB); // memsw 512 MiB - memory 256 MiB
    expect(m.swapUsageBytes).toBe(4n * MIB); // total_swap
    expect(m.stat.anonBytes).toBe(50n * MIB);
    expect(m.stat.fileBytes).toBe(40n * MIB);
    expect(m.stat.shmemBytes).toBe(4n * MIB);
    expect(m.stat.anonHugeBytes).toBe(20n * MIB);
    expect(m.stat.activeFileBytes).toBe(24n * MIB);
    expect(m.stat.inactiveFileBytes).toBe(12n * MIB);
    expect(m.stat.swapCachedBytes).toBe(65536n);
    expect(m.stat.slabReclaimableBytes).toBe(0n); // v1 has no slab line
  });

  it('keeps v1 event counters under their /proc/vmstat names, without byte gauges', () => {
    const { events } = read(v1Location('v1', '/limited')).stat;
    expect(events.get('pgfault')).toBe(45000n);
    expect(events.get('pgmajfault')).toBe(20n);
    expect(events.get('pgpgin')).toBe(30000n);
    expect(events.get('workingset_refault_file')).toBe(12n);
    expect(events.has('cache')).toBe(false);
    expect(events.has('total_pgfault')).toBe(false);
    expect(events.has('hierarchical_memory_limit')).toBe(false);
  });

  it('reads 9223372036854771712 (no limit) as null for memory and swap', () => {
    const m = read(v1Location('v1', '/unlimited'));
    expect(m.limitBytes).toBeNull();
    expect(m.swapLimitBytes).toBeNull();
    expect(m.swapAccounted).toBe(true);
    expect(m.usageBytes).toBe(24n * MIB + 4096n);
  });

  it("takes a tighter parent's limit from hierarchical_memory_limit", () => {
    const m = read(v1Location('v1', '/parent/child')); // own limit 512 MiB, parent 128 MiB
    expect(m.limitBytes).toBe(128n * MIB);
    expect(m.swapLimitBytes).toBeNull(); // memsw unlimited up the tree
  });

  it('reports swap as not accounted when the kernel has no memsw files', () => {
    const m = read(v1Location('v1-noswap', '/box'));
    expect(m.limitBytes).toBe(256n * MIB);
    expect(m.swapAccounted).toBe(false);
    expect(m.swapLimitBytes).toBeNull();
    expect(m.swapUsageBytes).toBe(0n);
  });

  it('reads the root memory cgroup (no limit)', () => {
    const m = read(v1Location('v1', '/'));
    expect(m.limitBytes).toBeNull();
    expect(m.usageBytes).toBe(1300n * MIB);
  });

  it('returns null for a cgroup directory without memory controller files', () => {
    expect(readMemory(v1Location('v1', '/empty'))).toBeNull();
  });

  it('throws a CgroupParseError naming the directory and memory.stat for a malformed line', () => {
    const loc = v1Location('v1', '/broken');
    expect(() => readMemory(loc)).toThrow(CgroupParseError);
    expect(() => readMemory(loc)).toThrow(`${FIXTURES}/v1/memory/broken/memory.stat: line 2 `);
  });

  it('throws when the cgroup directory is gone', () => {
    expect(() => readMemory(v1Location('v1', '/vanished'))).toThrow(/vanished\/memory\.stat: cgroup directory does not exist/);
  });
});

describe('readMemory on cgroup v2', () => {
  it("takes the parent's 256 MiB memory.max and swap.max 0 over the container's max", () => {
    const m = read(v2Location('/kubepods.slice/pod-a.slice/container-a.scope'));
    expect(m.limitBytes).toBe(256n * MIB);
    expect(m.usageBytes).toBe(100n * MIB);
    expect(m.swapAccounted).toBe(true);
    expect(m.swapLimitBytes).toBe(0n);
    expect(m.swapUsageBytes).toBe(0n);
    expect(m.stat.anonBytes).toBe(50n * MIB);
    expect(m.stat.fileBytes).toBe(40n * MIB);
    expect(m.stat.slabReclaimableBytes).toBe(3n * MIB);
    expect(m.stat.slabUnreclaimableBytes).toBe(2n * MIB);
    expect(m.stat.kernelStackBytes).toBe(1n * MIB);
    expect(m.stat.pageTablesBytes).toBe(2n * MIB);
    expect(m.stat.anonHugeBytes).toBe(20n * MIB);
  });

  it('keeps v2 event counters, without byte gauges', () => {
    const { events } = read(v2Location('/kubepods.slice/pod-a.slice/container-a.scope')).stat;
    expect(events.get('pgfault')).toBe(45000n);
    expect(events.get('workingset_refault_file')).toBe(12n);
    expect(events.get('pgscan_direct')).toBe(100n);
    for (const gauge of ['anon', 'file', 'slab', 'zswapped', 'file_thp', 'percpu']) {
      expect(events.has(gauge)).toBe(false);
    }
  });

  it('reads "max" everywhere as no memory or swap limit', () => {
    const m = read(v2Location('/system.slice/unlimited.service'));
    expect(m.limitBytes).toBeNull();
    expect(m.swapLimitBytes).toBeNull();
    expect(m.swapUsageBytes).toBe(1048576n);
    expect(m.usageBytes).toBe(24n * MIB);
  });

  it('takes the smaller of its own and its parents limits (own 512 MiB under 1 GiB)', () => {
    const m = read(v2Location('/kubepods.slice/pod-b.slice'));
    expect(m.limitBytes).toBe(512n * MIB);
    expect(m.swapLimitBytes).toBe(64n * MIB);
    expect(m.swapUsageBytes).toBe(1n * MIB);
  });

  it('reads the nearest ancestor when the memory controller is not enabled for the cgroup', () => {
    const m = read(v2Location('/kubepods.slice/pod-b.slice/app.scope'));
    expect(m.limitBytes).toBe(512n * MIB); // pod-b's
    expect(m.usageBytes).toBe(64n * MIB); // pod-b's memory.current
  });

  it('reports swap as not accounted when memory.swap.* files are absent', () => {
    const m = read(v2Location('/system.slice/noswap.service'));
    expect(m.limitBytes).toBe(64n * MIB);
    expect(m.swapAccounted).toBe(false);
    expect(m.swapLimitBytes).toBeNull();
    expect(m.swapUsageBytes).toBe(0n);
  });

  it('derives the root cgroup usage from memory.stat (the root has no memory.current)', () => {
    const m = read(v2Location('/'));
    expect(m.limitBytes).toBeNull();
    expect(m.usageBytes).toBe(1200n * MIB); // anon 300 MiB + file 900 MiB
    expect(m.swapAccounted).toBe(false);
  });

  it('throws a CgroupParseError naming memory.max when it is neither a number nor "max"', () => {
    const loc = v2Location('/system.slice/broken.service');
    expect(() => readMemory(loc)).toThrow(CgroupParseError);
    expect(() => readMemory(loc)).toThrow(`${FIXTURES}/v2/system.slice/broken.service/memory.max: limit is not an unsigned integer: "lots"`);
  });
});
