import { describe, expect, it } from 'vitest';
import { readCpuLimits, readCpuUsage } from '../../src/cgroup/read';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { FIXTURES, v1Location, v2Location } from './helpers';

describe('readCpuLimits on cgroup v1', () => {
  it('reads the effective cpuset and a 1.5 CPU quota', () => {
    expect(readCpuLimits(v1Location('v1', '/limited'))).toEqual({ cpusetCpus: [2, 3], quotaCpus: 1.5 });
  });

  it("takes a tighter parent's quota and the cpuset narrowed by the parent", () => {
    // child: quota 2 CPUs, cpuset.cpus 0-5; parent: quota 0.5 CPUs, cpuset 0-3,6
    expect(readCpuLimits(v1Location('v1', '/parent/child'))).toEqual({ cpusetCpus: [0, 1, 2, 3], quotaCpus: 0.5 });
  });

  it('reads no quota from -1 up to the root', () => {
    expect(readCpuLimits(v1Location('v1', '/')).quotaCpus).toBeNull();
  });

  it('falls back to cpuset.cpus on kernels without cpuset.effective_cpus', () => {
    expect(readCpuLimits(v1Location('v1', '/oldkernel')).cpusetCpus).toEqual([1]);
  });

  it('gives null for both when the controller files are missing', () => {
    expect(readCpuLimits(v1Location('v1', '/empty'))).toEqual({ cpusetCpus: null, quotaCpus: null });
  });

  it('throws a CgroupParseError naming cpu.cfs_quota_us when it is not a number', () => {
    const loc = v1Location('v1', '/malformed', ['cpu,cpuacct']);
    expect(() => readCpuLimits(loc)).toThrow(CgroupParseError);
    expect(() => readCpuLimits(loc)).toThrow(`${FIXTURES}/v1/cpu,cpuacct/malformed/cpu.cfs_quota_us: value is not a decimal integer: "unlimited"`);
  });
});

describe('readCpuUsage on cgroup v1', () => {
  it('reads per-CPU user/system ns from cpuacct.usage_all and sums them', () => {
    const usage = readCpuUsage(v1Location('v1', '/limited'));
    expect(usage).not.toBeNull();
    expect(usage!.perCpu).toHaveLength(8);
    expect(usage!.perCpu![2]).toEqual({ userNs: 3000000000n, systemNs: 1000000000n });
    expect(usage!.perCpu![0]).toEqual({ userNs: 0n, systemNs: 0n });
    expect(usage!.userNs).toBe(5500000000n);
    expect(usage!.systemNs).toBe(1500000000n);
  });

  it('keeps nanosecond totals exact as bigints', () => {
    const usage = readCpuUsage(v1Location('v1', '/'));
    expect(usage!.userNs).toBe(20916847406n + 31626751436n);
    expect(usage!.systemNs).toBe(11380202724n + 21091797000n);
  });

  it('splits per-CPU totals by cpuacct.stat on kernels before 4.7', () => {
    const usage = readCpuUsage(v1Location('v1', '/oldkernel'));
    // user:system ticks = 300:100
    expect(usage!.perCpu).toEqual([
      { userNs: 2250000000n, systemNs: 750000000n },
      { userNs: 750000000n, systemNs: 250000000n },
    ]);
    expect(usage!.userNs + usage!.systemNs).toBe(4000000000n);
  });

  it('returns null when no cpuacct accounting file exists', () => {
    expect(readCpuUsage(v1Location('v1', '/empty'))).toBeNull();
  });
});

describe('readCpuLimits / readCpuUsage on cgroup v2', () => {
  it("takes the parent's 1.5 CPUs and the nearest cpuset.cpus.effective", () => {
    // container: cpu.max "max 100000", no cpuset files; pod: 150000/100000, cpus 2-3;
    // kubepods: 400000/100000
    expect(readCpuLimits(v2Location('/kubepods.slice/pod-a.slice/container-a.scope'))).toEqual({
      cpusetCpus: [2, 3],
      quotaCpus: 1.5,
    });
  });

  it("takes the cgroup's own quota when it is the tightest", () => {
    expect(readCpuLimits(v2Location('/kubepods.slice/pod-b.slice/app.scope')).quotaCpus).toBe(0.5);
  });

  it('reads "max" everywhere as no quota, and the root cpuset', () => {
    expect(readCpuLimits(v2Location('/system.slice/unlimited.service'))).toEqual({
      cpusetCpus: [0, 1, 2, 3, 4, 5, 6, 7],
      quotaCpus: null,
    });
  });

  it('throws a CgroupParseError naming cpu.max when it has one field', () => {
    expect(() => readCpuLimits(v2Location('/system.slice/broken.service'))).toThrow(
      `${FIXTURES}/v2/system.slice/broken.service/cpu.max: not "$MAX $PERIOD": "100000"`,
    );
  });

  it('reads cpu.stat usec as ns, with no per-CPU split', () => {
    expect(readCpuUsage(v2Location('/kubepods.slice/pod-a.slice/container-a.scope'))).toEqual({
      userNs: 3000000000n,
      systemNs: 2000000000n,
      perCpu: null,
    });
  });
});

describe('readCpuUsage on a hybrid layout', () => {
  it('reads v1 cpuacct, not the unified cgroup', () => {
    // The hybrid fixture's cpuacct has no accounting files: v1 says "unknown" (null) rather than
    // answering with the unified root's cpu.stat.
    expect(readCpuUsage(v1Location('hybrid', '/'))).toBeNull();
  });
});
