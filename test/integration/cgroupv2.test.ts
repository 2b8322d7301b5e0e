/**
 * cgroup v2 for real: nested limits with a tighter parent, memory.swap.max, cpu.max, cpuset,
 * and "max" everywhere. These need a pure v2 machine: they run in the VM (test/vm/run.sh, part
 * of scripts/test.sh); the first test fails there if the VM is not pure v2.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, isPureV2, type TestCgroup } from '../helpers/cgroups';
import { runInContainer } from '../helpers/container';

const MIB = 1024n * 1024n;
const pureV2 = isPureV2();

function value(text: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text);
  if (!m) throw new Error(`${key} missing from:\n${text}`);
  return Number(m[1]);
}

/** A child cgroup below `parent` (v2: one directory), with its own files written. */
function childOf(parent: TestCgroup, name: string, files: Record<string, string>): TestCgroup {
  const parentDir = parent.dirs.get('memory') as string;
  fs.writeFileSync(path.join(parentDir, 'cgroup.subtree_control'), '+memory +cpu +cpuset +pids');
  const dir = path.join(parentDir, name);
  fs.mkdirSync(dir);
  for (const [file, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), content);
  return {
    name,
    dirs: new Map(['memory', 'cpu', 'cpuset', 'pids'].map((c) => [c, dir])),
    key: `${parent.key}/${name}`,
    procsFiles: [path.join(dir, 'cgroup.procs')],
    remove: async () => {
      for (let i = 0; i < 50 && fs.existsSync(dir); i++) {
        try { fs.rmdirSync(dir); } catch { await new Promise((r) => setTimeout(r, 100)); }
      }
    },
  };
}

describe('cgroup v2', () => {
  it('runs on a pure cgroup v2 machine in the VM', () => {
    if (process.env.ISOLFS_VM === '1') {
      expect(pureV2).toBe(true);
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).toMatch(/ \/sys\/fs\/cgroup .* - cgroup2 /);
    } else if (!pureV2) {
      console.warn('!!! not a pure cgroup v2 machine: the cgroup v2 cases run in the VM (test/vm/run.sh)');
    }
  });

  describe.runIf(pureV2)('views on real v2 cgroups', () => {
    let daemon: DaemonHandle;
    const made: TestCgroup[] = [];
    const hostMeminfo = fs.readFileSync('/proc/meminfo', 'utf8');
    const hostCpus = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length;

    beforeAll(async () => {
      daemon = await startDaemon();
    });

    afterAll(async () => {
      await daemon?.cleanup();
      for (const cg of made.reverse()) await cg.remove();
    });

    const inside = async (cg: TestCgroup, cmd: string): Promise<string> => {
      const result = await runInContainer(cg, { mountpoint: daemon.mountpoint }, cmd);
      if (result.code !== 0) throw new Error(`${cmd}: ${result.stderr}`);
      return result.stdout;
    };

    it('a child with memory.max "max" below a 128 MiB parent shows the parent\'s limit', async () => {
      const parent = createTestCgroup('v2-parent', { memoryLimitBytes: 128n * MIB });
      made.push(parent);
      const child = childOf(parent, 'child', { 'memory.max': 'max' });
      made.push(child);
      expect(fs.readFileSync(path.join(child.dirs.get('memory') as string, 'memory.max'), 'utf8').trim()).toBe('max');
      const meminfo = await inside(child, 'cat /proc/meminfo');
      expect(value(meminfo, 'MemTotal')).toBe(128 * 1024);
      expect(value(meminfo, 'MemFree')).toBeLessThanOrEqual(value(meminfo, 'MemAvailable'));
    });

    it('memory.swap.max: 0 gives no swap; a limit gives min(limit, host swap)', async () => {
      const hostSwapKb = value(hostMeminfo, 'SwapTotal');
      const noSwap = createTestCgroup('v2-noswap', { memoryLimitBytes: 128n * MIB, memorySwapLimitBytes: 0n });
      made.push(noSwap);
      const someSwap = createTestCgroup('v2-swap', { memoryLimitBytes: 128n * MIB, memorySwapLimitBytes: 64n * MIB });
      made.push(someSwap);
      expect(fs.readFileSync(path.join(someSwap.dirs.get('memory') as string, 'memory.swap.max'), 'utf8').trim()).toBe(String(64n * MIB));
      const none = await inside(noSwap, 'cat /proc/meminfo; cat /proc/swaps');
      expect(value(none, 'SwapTotal')).toBe(0);
      const some = await inside(someSwap, 'cat /proc/meminfo');
      expect(value(some, 'SwapTotal')).toBe(Math.min(64 * 1024, hostSwapKb));
      expect(value(some, 'SwapFree')).toBeLessThanOrEqual(value(some, 'SwapTotal'));
    });

    it('cpu.max of half a CPU shows 1 CPU, and cpu.stat drives /proc/stat', async () => {
      const half = createTestCgroup('v2-half', { cpuQuotaUs: 50_000, cpuPeriodUs: 100_000 });
      made.push(half);
      expect(fs.readFileSync(path.join(half.dirs.get('cpu') as string, 'cpu.max'), 'utf8').trim()).toBe('50000 100000');
      const out = await inside(half,
        'getconf _NPROCESSORS_ONLN; grep -c ^processor /proc/cpuinfo; head -1 /proc/stat; n=0; while [ $n -lt 200000 ]; do n=$((n+1)); done; head -1 /proc/stat');
      const [onln, count, before, after] = out.trim().split('\n');
      expect([onln, count]).toEqual(['1', '1']);
      const busy = (line: string) => { const f = line.trim().split(/\s+/).slice(1).map(Number); return f[0] + f[2]; };
      expect(busy(after)).toBeGreaterThan(busy(before)); // the loop's CPU time, from cpu.stat
    });

    it('cpuset.cpus.effective of one CPU shows that CPU only', async () => {
      const one = createTestCgroup('v2-cpuset', { cpus: hostCpus > 1 ? '1' : '0' });
      made.push(one);
      expect(fs.readFileSync(path.join(one.dirs.get('cpuset') as string, 'cpuset.cpus.effective'), 'utf8').trim()).toBe(hostCpus > 1 ? '1' : '0');
      expect(await inside(one, 'getconf _NPROCESSORS_ONLN; cat /sys/devices/system/cpu/online; grep -c "^cpu[0-9]" /proc/stat')).toBe('1\n0\n1\n');
    });

    it('"max" everywhere reads like the host', async () => {
      const open = createTestCgroup('v2-max');
      made.push(open);
      const dir = open.dirs.get('memory') as string;
      expect(fs.readFileSync(path.join(dir, 'memory.max'), 'utf8').trim()).toBe('max');
      expect(fs.readFileSync(path.join(dir, 'cpu.max'), 'utf8').trim()).toMatch(/^max /);
      const out = await inside(open, 'cat /proc/meminfo; getconf _NPROCESSORS_ONLN');
      expect(value(out, 'MemTotal')).toBe(value(hostMeminfo, 'MemTotal'));
      expect(out.trim().split('\n').pop()).toBe(String(hostCpus));
    });
  });
});
