import { describe, expect, it } from 'vitest';
import { visibleCpus } from '../../src/views/visibleCpus';

const ONLINE_8 = [0, 1, 2, 3, 4, 5, 6, 7];

describe('visibleCpus', () => {
  it('shows every online CPU without cpuset or quota', () => {
    expect(visibleCpus(ONLINE_8, { cpusetCpus: null, quotaCpus: null })).toEqual(ONLINE_8);
  });

  it('shows the cpuset\'s CPUs that are online, ascending', () => {
    expect(visibleCpus([0, 1, 2, 3, 6, 7], { cpusetCpus: [7, 2, 3, 5], quotaCpus: null })).toEqual([2, 3, 7]);
  });

  it('cuts to ceil(quota) CPUs, keeping the lowest ids of the cpuset', () => {
    expect(visibleCpus(ONLINE_8, { cpusetCpus: [2, 4, 5, 6], quotaCpus: 1.5 })).toEqual([2, 4]);
    expect(visibleCpus(ONLINE_8, { cpusetCpus: null, quotaCpus: 3 })).toEqual([0, 1, 2]);
    expect(visibleCpus(ONLINE_8, { cpusetCpus: null, quotaCpus: 3.0001 })).toEqual([0, 1, 2, 3]);
  });

  it('never shows fewer than one CPU, however small the quota', () => {
    expect(visibleCpus(ONLINE_8, { cpusetCpus: [5, 6], quotaCpus: 0.01 })).toEqual([5]);
    expect(visibleCpus(ONLINE_8, { cpusetCpus: null, quotaCpus: 0 })).toEqual([0]);
  });

  it('lets a quota larger than the cpuset change nothing', () => {
    expect(visibleCpus(ONLINE_8, { cpusetCpus: [1, 2], quotaCpus: 6 })).toEqual([1, 2]);
  });

  it('shows the online CPUs when the cpuset holds none of them (a read racing hotplug)', () => {
    expect(visibleCpus([0, 1], { cpusetCpus: [4, 5], quotaCpus: 1 })).toEqual([0]);
  });

  it('refuses a host with no CPU online', () => {
    expect(() => visibleCpus([], { cpusetCpus: null, quotaCpus: null })).toThrow(/no online/);
  });
});
