import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCpuOnline } from '../../src/host/cpuOnline';
import { renderCpuOnline } from '../../src/views/cpuOnline';

describe('renderCpuOnline', () => {
  it('prints one CPU as "0" and more as a range, like the kernel', () => {
    expect(renderCpuOnline(1)).toBe('0\n');
    expect(renderCpuOnline(2)).toBe('0-1\n');
    expect(renderCpuOnline(64)).toBe('0-63\n');
  });

  it('prints what the host parser reads back as 0..n-1', () => {
    for (const n of [1, 2, 3, 17]) expect(parseCpuOnline(renderCpuOnline(n))).toEqual([...new Array(n).keys()]);
  });

  it.each([0, -1, 1.5])('refuses %s CPUs', (n) => {
    expect(() => renderCpuOnline(n)).toThrow(/online/);
  });
});

describe('parseCpuOnline (host)', () => {
  it('reads the kernel\'s list format', () => {
    expect(parseCpuOnline('0-1\n')).toEqual([0, 1]);
    expect(parseCpuOnline('0,2-4,7\n')).toEqual([0, 2, 3, 4, 7]);
    expect(parseCpuOnline('0\n')).toEqual([0]);
  });

  it('reads this machine\'s file', () => {
    expect(parseCpuOnline(readFileSync('/sys/devices/system/cpu/online', 'utf8')).length).toBeGreaterThan(0);
  });

  it.each([['garbage', 'zero\n'], ['an empty list', '\n'], ['a descending range', '3-1\n']])('rejects %s naming the file', (_n, text) => {
    expect(() => parseCpuOnline(text)).toThrow(/^\/sys\/devices\/system\/cpu\/online: /);
  });
});
