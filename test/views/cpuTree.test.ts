import { describe, expect, it } from 'vitest';
import { cpuFileKind, formatCpuMask, parseCpuMask, renderCpuTreeFile, renumber } from '../../src/views/cpuTree';

describe('cpuFileKind', () => {
  it.each([
    ['online', 'count-list'], ['possible', 'count-list'], ['present', 'count-list'], ['offline', 'empty-list'],
    ['isolated', 'list'], ['nohz_full', 'list'], ['smt/active', 'smt-active'], ['smt/control', 'host'],
    ['kernel_max', 'host'], ['modalias', 'host'], ['uevent', 'host'], ['vulnerabilities/meltdown', 'host'],
    ['cpu0/online', 'one'], ['cpu12/topology/core_id', 'host'], ['cpu0/topology/thread_siblings_list', 'list'],
    ['cpu0/topology/core_cpus_list', 'list'], ['cpu0/topology/package_cpus', 'mask'], ['cpu0/topology/core_siblings', 'mask'],
    ['cpu0/topology/cluster_cpus', 'mask'], ['cpu0/cache/index3/shared_cpu_list', 'list'],
    ['cpu0/cache/index3/shared_cpu_map', 'mask'], ['cpu0/cache/index3/size', 'host'],
    ['cpu0/cpufreq/related_cpus', 'space-list'], ['cpu0/cpufreq/affected_cpus', 'space-list'],
    ['cpu0/cpufreq/scaling_cur_freq', 'host'],
  ])('%s is %s', (rel, kind) => {
    expect(cpuFileKind(rel)).toBe(kind);
  });
});

describe('CPU masks (the kernel\'s %*pb)', () => {
  it('reads 32-bit chunks, most significant first', () => {
    expect(parseCpuMask('3\n')).toEqual([0, 1]);
    expect(parseCpuMask('00000001,80000000\n')).toEqual([31, 32]);
    expect(parseCpuMask('ff\n')).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('prints as wide as the CPU count, as the kernel does for nr_cpu_ids bits', () => {
    expect(formatCpuMask([0], 1)).toBe('1');
    expect(formatCpuMask([0, 1], 2)).toBe('3');
    expect(formatCpuMask([1], 8)).toBe('02');
    expect(formatCpuMask([0], 32)).toBe('00000001');
    expect(formatCpuMask([0, 33], 40)).toBe('02,00000001');
    expect(formatCpuMask([31], 64)).toBe('00000000,80000000');
  });

  it('refuses what is not a mask', () => {
    expect(() => parseCpuMask('0-3\n')).toThrow(/mask/);
    expect(() => parseCpuMask('123456789\n')).toThrow(/mask/);
  });
});

describe('renderCpuTreeFile', () => {
  // Host CPUs 2 and 6 (SMT siblings on an 8-CPU host numbered like Intel's: n and n+4).
  const visible = [2, 6];

  it('counts the container\'s CPUs in online, possible and present; none offline', () => {
    expect(renderCpuTreeFile({ kind: 'count-list', visible })).toBe('0-1\n');
    expect(renderCpuTreeFile({ kind: 'count-list', visible: [5] })).toBe('0\n');
    expect(renderCpuTreeFile({ kind: 'empty-list', visible })).toBe('\n');
    expect(renderCpuTreeFile({ kind: 'one', visible })).toBe('1\n');
  });

  it('renumbers lists, masks and cpufreq lists, dropping CPUs the container does not see', () => {
    expect(renumber([6, 2, 3], visible)).toEqual([0, 1]);
    expect(renderCpuTreeFile({ kind: 'list', visible, hostText: '2,6\n' })).toBe('0-1\n');
    expect(renderCpuTreeFile({ kind: 'list', visible, hostText: '0-7\n' })).toBe('0-1\n');
    expect(renderCpuTreeFile({ kind: 'list', visible, hostText: '3\n' })).toBe('\n');
    expect(renderCpuTreeFile({ kind: 'mask', visible, hostText: '44\n' })).toBe('3\n');
    expect(renderCpuTreeFile({ kind: 'mask', visible, hostText: '04\n' })).toBe('1\n');
    expect(renderCpuTreeFile({ kind: 'space-list', visible, hostText: '6 \n' })).toBe('1 \n');
  });

  it("keeps nohz_full's (null) and the host's other files as they are", () => {
    expect(renderCpuTreeFile({ kind: 'list', visible, hostText: '(null)\n' })).toBe('(null)\n');
    expect(renderCpuTreeFile({ kind: 'host', visible, hostText: '8192\n' })).toBe('8192\n');
  });

  it('says SMT is active only when two visible CPUs are siblings', () => {
    const siblings = [[2, 6], [2, 6]];
    expect(renderCpuTreeFile({ kind: 'smt-active', visible, hostText: '1\n', threadSiblings: siblings })).toBe('1\n');
    expect(renderCpuTreeFile({ kind: 'smt-active', visible: [2, 3], hostText: '1\n', threadSiblings: [[2, 6], [3, 7]] })).toBe('0\n');
    expect(renderCpuTreeFile({ kind: 'smt-active', visible, hostText: '0\n', threadSiblings: siblings })).toBe('0\n');
  });

  it('refuses a host list it cannot read (EIO, logged, rather than a wrong count)', () => {
    expect(() => renderCpuTreeFile({ kind: 'list', visible, hostText: 'garbage\n' })).toThrow();
  });
});
