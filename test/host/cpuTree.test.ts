/**
 * The CPU tree on a fixture host: an 8-CPU /sys/devices/system/cpu in the kernel's formats (SMT
 * siblings n and n+4, an L3 shared by all, cpufreq policies behind cpuN/cpufreq symlinks), read
 * for containers of the v1 and v2 fixture cgroup trees.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanHostCpuTree, withinBudget } from '../../src/host/cpuTree';
import { readCpuTreeFile } from '../../src/cpuTree';
import { TimedCache, type HostSources } from '../../src/files';
import { ContainerRegistry, type ContainerRecord } from '../../src/containers/registry';
import { LoadavgSampler } from '../../src/loadavg/sampler';
import type { CpuTreePath } from '../../src/fuse/layout';
import { v1Location, v2Location, writeTree } from '../cgroup/helpers';

const CPUS = 8;

/** The files of host CPU `n` (core n % 4, package 0). */
function cpuFiles(n: number): Record<string, string> {
  const sibling = (n + 4) % 8;
  const pair = [Math.min(n, sibling), Math.max(n, sibling)];
  const files: Record<string, string> = {
    [`cpu${n}/topology/core_id`]: `${n % 4}\n`,
    [`cpu${n}/topology/physical_package_id`]: '0\n',
    [`cpu${n}/topology/thread_siblings_list`]: `${pair.join(',')}\n`,
    [`cpu${n}/topology/thread_siblings`]: `${((1 << pair[0]) | (1 << pair[1])).toString(16).padStart(2, '0')}\n`,
    [`cpu${n}/topology/core_siblings_list`]: '0-7\n',
    [`cpu${n}/topology/core_siblings`]: 'ff\n',
    [`cpu${n}/cache/index0/level`]: '1\n',
    [`cpu${n}/cache/index0/size`]: '48K\n',
    [`cpu${n}/cache/index0/shared_cpu_list`]: `${pair.join(',')}\n`,
    [`cpu${n}/cache/index3/level`]: '3\n',
    [`cpu${n}/cache/index3/size`]: '30720K\n',
    [`cpu${n}/cache/index3/shared_cpu_list`]: '0-7\n',
    [`cpu${n}/cache/index3/shared_cpu_map`]: 'ff\n',
    [`cpufreq/policy${n}/related_cpus`]: `${n} \n`,
    [`cpufreq/policy${n}/scaling_cur_freq`]: `${2_000_000 + n}\n`,
  };
  if (n !== 0) files[`cpu${n}/online`] = '1\n'; // the boot CPU has none on x86
  return files;
}

describe('the CPU tree on a fixture host', () => {
  let dir: string;
  let sources: HostSources;
  const registry = new ContainerRegistry({ idleMs: 60_000 });

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-cputree-'));
    const cpuDir = path.join(dir, 'sys/devices/system/cpu');
    const files: Record<string, string> = {
      online: '0-7\n', possible: '0-7\n', present: '0-7\n', offline: '\n', kernel_max: '8191\n', isolated: '\n',
      modalias: 'cpu:type:x86,ven0000fam0006mod0055:feature:,0000,0001\n', uevent: '', 'smt/active': '1\n',
      'smt/control': 'on\n', 'vulnerabilities/meltdown': 'Not affected\n', 'cpufreq/ondemand/up_threshold': '95\n',
      'bad name': 'x\n', cpu9: 'not a directory\n',
    };
    for (let n = 0; n < CPUS; n++) Object.assign(files, cpuFiles(n));
    writeTree(cpuDir, files);
    fs.writeFileSync(path.join(cpuDir, 'probe'), '');
    fs.chmodSync(path.join(cpuDir, 'probe'), 0o200); // write-only, as the kernel's
    fs.mkdirSync(path.join(dir, 'sys/bus/cpu'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'sys/bus/cpu/secret'), 'outside\n');
    for (let n = 0; n < CPUS; n++) {
      fs.symlinkSync(`../cpufreq/policy${n}`, path.join(cpuDir, `cpu${n}/cpufreq`));
      fs.symlinkSync('../../../../bus/cpu', path.join(cpuDir, `cpu${n}/subsystem`));
    }
    const sampler = new LoadavgSampler({ containers: () => [], countTasks: () => ({ running: 0, blocked: 0, total: 0, truncated: false }) });
    sources = {
      procRoot: path.join(dir, 'proc'), sysRoot: path.join(dir, 'sys'), userHz: 100, pageSizeBytes: 4096n,
      maxTasksPerRead: 1000, sampler, cpuinfoCache: new TimedCache(1000, () => []),
    };
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("scans the host's files: per CPU ones apart, symlinks only within the directory, odd names and write-only files left out", () => {
    const tree = scanHostCpuTree(sources.sysRoot);
    expect(tree.cpuIds).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(tree.shared).toEqual(expect.arrayContaining(['online', 'possible', 'present', 'offline', 'kernel_max', 'isolated',
      'modalias', 'uevent', 'smt/active', 'smt/control', 'vulnerabilities/meltdown', 'cpufreq/ondemand/up_threshold']));
    expect(tree.shared.filter((f) => f.startsWith('cpufreq/policy') || ['probe', 'bad name', 'cpu9'].includes(f))).toEqual([]);
    expect(tree.perCpu).toEqual(expect.arrayContaining(['online', 'topology/core_id', 'cache/index3/shared_cpu_map',
      'cpufreq/related_cpus', 'cpufreq/scaling_cur_freq']));
    expect(tree.perCpu.filter((f) => f.startsWith('subsystem'))).toEqual([]);
  });

  it('keeps what programs read first when many CPUs would make the tree too big', () => {
    const files = ['cache/index0/size', 'cpufreq/related_cpus', 'cpuidle/state0/name', 'online', 'power/control', 'topology/core_id'];
    expect(withinBudget(files, 8)).toEqual(files);
    expect(withinBudget(files, 20_000)).toEqual(['cache/index0/size', 'cpufreq/related_cpus', 'online', 'topology/core_id']);
    expect(withinBudget(files, 40_000)).toEqual(['online', 'topology/core_id']);
  });

  it('a missing directory gives the computed files only', () => {
    expect(scanHostCpuTree(path.join(dir, 'nothing'))).toEqual({ shared: ['online', 'possible', 'present', 'offline'], perCpu: ['online'], cpuIds: [] });
  });

  const read = (rel: string, container: ContainerRecord | null): string => {
    const result = readCpuTreeFile(`/sys/devices/system/cpu/${rel}` as CpuTreePath, container, sources, 1_000_000);
    if (!Buffer.isBuffer(result)) throw new Error(`${rel}: ${JSON.stringify(result)}`);
    return result.toString('utf8');
  };

  // cpuset 2-3 and 1.5 CPUs of quota: host CPUs 2 and 3 (different cores), in both versions.
  describe.each([
    ['v1 /limited', () => v1Location('v1', '/limited')],
    ['v2 /kubepods.slice/pod-a.slice/container-a.scope', () => v2Location('/kubepods.slice/pod-a.slice/container-a.scope')],
  ])('%s (host CPUs 2 and 3)', (_label, location) => {
    let container: ContainerRecord;
    beforeAll(() => { container = registry.use(location(), 0); });

    it('counts 2 CPUs', () => {
      expect(['online', 'possible', 'present', 'offline'].map((f) => read(f, container))).toEqual(['0-1\n', '0-1\n', '0-1\n', '\n']);
    });

    it('cpu1/ is host CPU 3, renumbered', () => {
      expect(read('cpu1/online', container)).toBe('1\n');
      expect(read('cpu1/topology/core_id', container)).toBe('3\n');
      expect(read('cpu1/topology/thread_siblings_list', container)).toBe('1\n'); // host 3,7: 7 not seen
      expect(read('cpu1/topology/thread_siblings', container)).toBe('2\n');
      expect(read('cpu1/topology/core_siblings_list', container)).toBe('0-1\n');
      expect(read('cpu1/cache/index3/shared_cpu_map', container)).toBe('3\n');
      expect(read('cpu1/cache/index3/size', container)).toBe('30720K\n');
      expect(read('cpu1/cpufreq/related_cpus', container)).toBe('1 \n');
      expect(read('cpu1/cpufreq/scaling_cur_freq', container)).toBe('2000003\n');
    });

    it('cpu0/online exists though the host boot CPU has none; cpu2/ does not', () => {
      expect(read('cpu0/online', container)).toBe('1\n');
      expect(readCpuTreeFile('/sys/devices/system/cpu/cpu2/topology/core_id', container, sources, 1_000_000)).toEqual({ errno: os.constants.errno.ENOENT });
    });

    it('SMT is not active (no two of its CPUs are siblings); the rest is the host\'s', () => {
      expect(read('smt/active', container)).toBe('0\n');
      expect(read('smt/control', container)).toBe('on\n');
      expect(read('kernel_max', container)).toBe('8191\n');
      expect(read('vulnerabilities/meltdown', container)).toBe('Not affected\n');
    });
  });

  it('v1 root (every CPU): SMT active, masks 8 CPUs wide', () => {
    const everything = registry.use(v1Location('v1', '/'), 0);
    expect(read('smt/active', everything)).toBe('1\n');
    expect(read('cpu5/topology/thread_siblings', everything)).toBe('22\n');
    expect(read('possible', everything)).toBe('0-7\n');
  });

  it("a reader that is not isolated gets the host's files as they are, the host's errno too", () => {
    expect(read('cpu3/topology/thread_siblings_list', null)).toBe('3,7\n');
    expect(read('possible', null)).toBe('0-7\n');
    expect(readCpuTreeFile('/sys/devices/system/cpu/cpu0/online', null, sources, 0)).toEqual({ errno: os.constants.errno.ENOENT });
  });
});
