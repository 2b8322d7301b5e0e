import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { parseMeminfo, readHostMeminfo } from '../../src/host/meminfo';

const FIXTURE_DIR = path.join(__dirname, '../fixtures/proc');
const fixture = readFileSync(path.join(FIXTURE_DIR, 'meminfo'), 'utf8');

describe('parseMeminfo', () => {
  it('keeps every line of the real file, in order, with its unit', () => {
    const rows = fixture.trimEnd().split('\n');
    const meminfo = parseMeminfo(fixture);
    expect(meminfo.lines).toHaveLength(rows.length);
    expect(meminfo.lines.map((l) => l.key)).toEqual(rows.map((r) => r.split(':')[0]));
    expect(meminfo.lines[0]).toEqual({ key: 'MemTotal', value: 24683656n, unit: 'kB' });
    expect(meminfo.lines.find((l) => l.key === 'HugePages_Total')).toEqual({ key: 'HugePages_Total', value: 0n, unit: '' });
    expect(meminfo.lines.find((l) => l.key === 'Active(anon)')?.unit).toBe('kB');
  });

  it('looks values up by key as bigints, wider than 2^53 too', () => {
    const meminfo = parseMeminfo('MemTotal:       24683656 kB\nVmallocTotal:   34359738367 kB\nBig: 18446744073709551615 kB\n');
    expect(meminfo.get('MemTotal')).toBe(24683656n);
    expect(meminfo.get('VmallocTotal')).toBe(34359738367n);
    expect(meminfo.get('Big')).toBe(18446744073709551615n);
    expect(meminfo.get('Nope')).toBeUndefined();
  });

  it('reads the live /proc/meminfo of this machine', () => {
    expect(readHostMeminfo().get('MemTotal')).toBeGreaterThan(0n);
  });

  it.each([
    ['a line without a value', 'MemTotal:\n'],
    ['a non-numeric value', 'MemTotal: lots kB\n'],
    ['an unknown unit', 'MemTotal:       1 MB\n'],
    ['a duplicate key', 'MemTotal: 1 kB\nMemTotal: 2 kB\n'],
    ['a file without MemTotal', 'MemFree: 1 kB\n'],
  ])('rejects %s with an error naming /proc/meminfo', (_name, text) => {
    expect(() => parseMeminfo(text)).toThrow(CgroupParseError);
    expect(() => parseMeminfo(text)).toThrow(/^\/proc\/meminfo: /);
  });
});
