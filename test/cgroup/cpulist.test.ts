import { describe, expect, it } from 'vitest';
import { formatCpuList, parseCpuList } from '../../src/cgroup/cpulist';

describe('parseCpuList', () => {
  it('expands ranges and single ids in ascending order', () => {
    expect(parseCpuList('0-3,8,10-11\n')).toEqual([0, 1, 2, 3, 8, 10, 11]);
  });

  it('sorts and de-duplicates overlapping parts', () => {
    expect(parseCpuList('8,0-2,1')).toEqual([0, 1, 2, 8]);
  });

  it('reads an empty cpuset as no CPUs', () => {
    expect(parseCpuList('\n')).toEqual([]);
    expect(parseCpuList('')).toEqual([]);
  });

  it.each(['0-', 'a', '3-1', '1,,2', '0 1', '0-100000'])('rejects %j', (text) => {
    expect(() => parseCpuList(text)).toThrow();
  });
});

describe('formatCpuList', () => {
  it("writes runs as ranges like the kernel's bitmap list", () => {
    expect(formatCpuList([0, 1, 2, 3, 8, 10, 11])).toBe('0-3,8,10-11');
    expect(formatCpuList([0, 1])).toBe('0-1');
    expect(formatCpuList([5])).toBe('5');
    expect(formatCpuList([])).toBe('');
  });

  it('accepts unsorted input with duplicates', () => {
    expect(formatCpuList([3, 1, 2, 2, 7])).toBe('1-3,7');
  });

  it('round-trips with parseCpuList', () => {
    for (const text of ['0', '0-63', '1,3,5-7,9', '0-1,4-5']) {
      expect(formatCpuList(parseCpuList(text))).toBe(text);
    }
  });
});
