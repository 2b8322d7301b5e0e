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
    if (ownLimit !== 'max' && BigInt(ownLimit) < 2n ** 62n) {
      // A limit of our own: the effective one can only be tighter.
      expect(memory!.limitBytes).not.toBeNull();
      expect(memory!.limitBytes! <= BigInt(ownLimit)).toBe(true);
    }
  });

  it('reads CPU limits and usage without throwing', () => {
    const limits = readCpuLimits(location);
    const online = fs.readFileSync('/sys/devices/system/cpu/online', 'utf8');
    if (limits.cpusetCpus !== null) expect(limits.cpusetCpus.length).toBeGreaterThan(0);
    expect(online.length).toBeGreaterThan(0);
    const usage = readCpuUsage(location);
    if (usage !== null) expect(usage.userNs + usage.systemNs).toBeGreaterThan(0n);
  });
});
