import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { parseVmstat, readHostVmstat } from '../../src/host/vmstat';

const FIXTURE_DIR = path.join(__dirname, '../fixtures/proc');
const fixture = readFileSync(path.join(FIXTURE_DIR, 'vmstat'), 'utf8');

describe('parseVmstat', () => {
  it('keeps every line of the real file as a [key, value] pair, in order', () => {
    const lines = fixture.trimEnd().split('\n');
    const vmstat = parseVmstat(fixture);
    expect(vmstat.entries).toHaveLength(lines.length);
    expect(vmstat.entries.map(([key]) => key)).toEqual(lines.map((l) => l.split(' ')[0]));
    expect(vmstat.entries[0]![0]).toBe('nr_free_pages');
  });

  it('looks values up by key as bigints', () => {
    const vmstat = parseVmstat('nr_free_pages 1053432\npgfault 18446744073709551615\n');
    expect(vmstat.get('nr_free_pages')).toBe(1053432n);
    expect(vmstat.get('pgfault')).toBe(18446744073709551615n);
    expect(vmstat.get('nope')).toBeUndefined();
  });

  it('reads the live /proc/vmstat of this machine', () => {
    const vmstat = readHostVmstat();
    expect(vmstat.get('pgfault')).toBeGreaterThan(0n);
  });

  it.each([
    ['a line without a value', 'nr_free_pages\n'],
    ['a non-numeric value', 'nr_free_pages abc\n'],
    ['a negative value', 'nr_free_pages -1\n'],
    ['a duplicate key', 'pgfault 1\npgfault 2\n'],
    ['an empty file', ''],
  ])('rejects %s with an error naming /proc/vmstat', (_name, text) => {
    expect(() => parseVmstat(text)).toThrow(CgroupParseError);
    expect(() => parseVmstat(text)).toThrow(/^\/proc\/vmstat: /);
  });
});
