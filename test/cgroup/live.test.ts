/** The readers against this machine's real /sys/fs/cgroup and /proc (whatever layout it has). */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { discoverHierarchy, locateCgroup } from '../../src/cgroup/hierarchy';
import { readCpuLimits, readCpuUsage, readMemory } from '../../src/cgroup/read';
import { readProcCgroup } from '../../src/identity/procCgroup';

describe('readers on the live machine', () => {
  const hierarchy = discoverHierarchy('/sys/fs/cgroup');
  const entries = readProcCgroup('/proc', process.pid);
  const location = locateCgroup(hierarchy, entries!);

  it("locates this process's own cgroup under its memory path", () => {
    expect(entries).not.toBeNull();
    const memoryPath = hierarchy.unifiedControllers.has('memory') ? entries!.unified : entries!.v1.get('memory');
    expect(location.key).toBe(memoryPath);
    expect(fs.existsSync(location.dirs.memory!)).toBe(true);
  });

  it('reads a memory snapshot that matches the cgroup files', () => {
    const memory = readMemory(location);
    expect(memory).not.toBeNull();
    expect(memory!.usageBytes).toBeGreaterThan(0n);
    expect(memory!.stat.anonBytes + memory!.stat.fileBytes).toBeGreaterThan(0n);
    const dir = location.dirs.memory!;
    const ownLimitFile = location.version === 2 ? `${dir}/memory.max` : `${dir}/memory.limit_in_bytes`;
    const ownLimit = fs.readFileSync(ownLimitFile, 'utf8').trim();
    // The effective limit can only be tighter than our own; "max", >= 2^62 and null mean none.
    const NONE = 2n ** 64n;
    const ownLimitBytes = ownLimit !== 'max' && BigInt(ownLimit) < 2n ** 62n ? BigInt(ownLimit) : NONE;
    expect(memory!.limitBytes ?? NONE).toBeLessThanOrEqual(ownLimitBytes);
  });

  it('reads CPU limits and usage without throwing', () => {
    const limits = readCpuLimits(location);
    const online = fs.readFileSync('/sys/devices/system/cpu/online', 'utf8');
    // null: no cpuset (every online CPU), or no CPU accounting; a value is never empty or zero.
    expect(limits.cpusetCpus).not.toEqual([]);
    expect(online.length).toBeGreaterThan(0);
    const usage = readCpuUsage(location);
    const busyNs = usage === null ? null : usage.userNs + usage.systemNs;
    expect(busyNs === null || busyNs > 0n, `user+system ${busyNs} ns`).toBe(true);
  });
});
