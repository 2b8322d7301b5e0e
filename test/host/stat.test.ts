import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { parseStat, readHostStat } from '../../src/host/stat';

const fixture = (name: string) => readFileSync(path.join(__dirname, '../fixtures/proc', name), 'utf8');

describe('parseStat', () => {
  it('reads the aggregate and per-CPU tick lines of this machine\'s file', () => {
    const stat = parseStat(fixture('stat'));
    expect(stat.cpuFieldCount).toBe(10);
    expect(stat.total).toEqual({
      user: 28119n, nice: 0n, system: 10054n, idle: 1096732n, iowait: 887n,
      irq: 0n, softirq: 150n, steal: 14n, guest: 0n, guestNice: 0n,
    });
    expect([...stat.perCpu.keys()]).toEqual([0, 1]);
    expect(stat.perCpu.get(1)!.iowait).toBe(837n);
  });

  it('keeps every other line verbatim and in order', () => {
    const text = fixture('stat');
    const stat = parseStat(text);
    expect(stat.otherLines.map(([k]) => k)).toEqual(['intr', 'ctxt', 'btime', 'processes', 'procs_running', 'procs_blocked', 'softirq']);
    const others = text.split('\n').filter((l) => l !== '' && !l.startsWith('cpu'));
    expect(stat.otherLines.map(([k, rest]) => `${k} ${rest}`)).toEqual(others);
  });

  it('reads an old kernel\'s 8 columns, the missing ones as 0', () => {
    const stat = parseStat(fixture('stat-2.6.18'));
    expect(stat.cpuFieldCount).toBe(8);
    expect(stat.perCpu.get(0)).toMatchObject({ user: 1201n, steal: 0n, guest: 0n, guestNice: 0n });
  });

  it('keeps counters past 2^53 exact', () => {
    const stat = parseStat('cpu  18446744073709551615 0 0 0\ncpu0 18446744073709551615 0 0 0\n');
    expect(stat.total.user).toBe(18446744073709551615n);
  });

  it('keeps sparse CPU ids (offline CPUs have no line)', () => {
    const stat = parseStat('cpu  2 0 2 2 0 0 0 0 0 0\ncpu0 1 0 1 1 0 0 0 0 0 0\ncpu3 1 0 1 1 0 0 0 0 0 0\n');
    expect([...stat.perCpu.keys()]).toEqual([0, 3]);
  });

  it('reads the live /proc/stat of this machine', () => {
    expect(readHostStat().perCpu.size).toBeGreaterThan(0);
  });

  it.each([
    ['a file without the aggregate line', 'cpu0 1 2 3 4 5 6 7 8 9 10\n'],
    ['a non-numeric tick', 'cpu  1 2 x 4 5 6 7 8 9 10\n'],
    ['too many columns', 'cpu  1 2 3 4 5 6 7 8 9 10 11\n'],
    ['too few columns', 'cpu  1 2 3\n'],
    ['lines with different column counts', 'cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8\n'],
    ['a CPU listed twice', 'cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu0 1 2 3 4\n'],
    ['a line without a value', 'cpu  1 2 3 4\nctxt\n'],
  ])('rejects %s with an error naming /proc/stat', (_name, text) => {
    expect(() => parseStat(text)).toThrow(CgroupParseError);
    expect(() => parseStat(text)).toThrow(/^\/proc\/stat: /);
  });
});
