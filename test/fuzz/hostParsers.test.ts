/** Fuzz: the host's /proc and /sys parsers on arbitrary and hostile text. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { MAX_CPU_COUNT } from '../../src/cgroup/cpulist';
import { parseMeminfo } from '../../src/host/meminfo';
import { parseStat } from '../../src/host/stat';
import { parseVmstat } from '../../src/host/vmstat';
import { parseSwaps } from '../../src/host/swaps';
import { parseLoadavg } from '../../src/host/loadavg';
import { parseUptime } from '../../src/host/uptime';
import { parseCpuinfo } from '../../src/host/cpuinfo';
import { parseCpuOnline } from '../../src/host/cpuOnline';
import { anyText, hostileNumber, keyedLines, parsesOrRejects } from './arbitraries';

const RUNS = { numRuns: 200 };

describe('fuzz: host parsers throw only CgroupParseError, fast, with values in range', () => {
  it('parseMeminfo', () => {
    const keys = ['MemTotal:', 'MemFree:', 'MemAvailable:', 'SwapTotal:', 'HugePages_Total:', 'Active(anon):'];
    const text = keyedLines(keys, fc.constantFrom(' ', '        ', '\t')).map((t) => t.replace(/\n/g, ' kB\n'));
    fc.assert(fc.property(fc.oneof(text, keyedLines(keys), anyText), (t) => {
      const info = parsesOrRejects(() => parseMeminfo(t), CgroupParseError);
      if (info === null) return;
      expect(info.get('MemTotal')).toBeDefined();
      for (const line of info.lines) expect(line.value >= 0n && line.value < 1n << 67n).toBe(true);
      expect(new Set(info.lines.map((l) => l.key)).size).toBe(info.lines.length); // no duplicate
    }), RUNS);
  });

  it('parseStat', () => {
    const cpuLine = fc.tuple(
      fc.oneof(fc.constant(''), fc.nat(20).map(String), hostileNumber),
      fc.array(hostileNumber, { minLength: 1, maxLength: 12 }),
    ).map(([id, values]) => `cpu${id} ${values.join(' ')}`);
    const other = fc.tuple(fc.constantFrom('intr', 'ctxt', 'btime', 'procs_running', 'x'), hostileNumber).map(([k, v]) => `${k} ${v}`);
    const text = fc.array(fc.oneof(cpuLine, other), { maxLength: 30 }).map((l) => `${l.join('\n')}\n`);
    fc.assert(fc.property(fc.oneof(text, anyText), (t) => {
      const stat = parsesOrRejects(() => parseStat(t), CgroupParseError);
      if (stat === null) return;
      for (const id of stat.perCpu.keys()) expect(id >= 0 && id < MAX_CPU_COUNT).toBe(true);
      for (const ticks of [stat.total, ...stat.perCpu.values()]) {
        for (const v of Object.values(ticks)) expect(v >= 0n).toBe(true);
      }
    }), RUNS);
  });

  it('parseStat refuses cpu4294967294 instead of indexing with it', () => {
    expect(() => parseStat('cpu  1 1 1 1\ncpu4294967294 1 1 1 1\n')).toThrow(CgroupParseError);
    expect(() => parseStat('cpu  1 1 1 1\ncpu8192 1 1 1 1\n')).toThrow(/past the kernel's 8192 CPUs/);
  });

  it('parseVmstat', () => {
    const keys = ['nr_free_pages', 'pgpgin', 'pgfault', 'nr_dirty'];
    fc.assert(fc.property(fc.oneof(keyedLines(keys), anyText), (t) => {
      const vm = parsesOrRejects(() => parseVmstat(t), CgroupParseError);
      if (vm !== null) for (const [, v] of vm.entries) expect(v >= 0n).toBe(true);
    }), RUNS);
  });

  it('parseSwaps', () => {
    const header = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority';
    const device = fc.tuple(fc.constantFrom('/dev/sda2', '/swap\\040file', ''), fc.constantFrom('partition', 'file'), hostileNumber, hostileNumber, hostileNumber)
      .map((f) => f.join('\t'));
    const text = fc.array(device, { maxLength: 5 }).map((d) => `${[header, ...d].join('\n')}\n`);
    fc.assert(fc.property(fc.oneof(text, anyText), (t) => {
      const swaps = parsesOrRejects(() => parseSwaps(t), CgroupParseError);
      if (swaps === null) return;
      for (const d of swaps.devices) {
        expect(d.sizeKb >= 0n && d.usedKb >= 0n).toBe(true);
        expect(Number.isSafeInteger(d.priority)).toBe(true);
      }
    }), RUNS);
  });

  it('parseLoadavg and parseUptime give finite numbers', () => {
    const loadavg = fc.tuple(hostileNumber, hostileNumber, hostileNumber, hostileNumber, hostileNumber)
      .map(([a, b, c, d, e]) => `${a}.00 ${b}.52 0.10 ${c}/${d} ${e}\n`);
    fc.assert(fc.property(fc.oneof(loadavg, anyText), (t) => {
      const l = parsesOrRejects(() => parseLoadavg(t), CgroupParseError);
      if (l !== null) for (const n of [l.running, l.total, l.lastPid]) expect(Number.isSafeInteger(n)).toBe(true);
    }), RUNS);
    const uptime = fc.tuple(hostileNumber, hostileNumber).map(([a, b]) => `${a}.27 ${b}.89\n`);
    fc.assert(fc.property(fc.oneof(uptime, anyText), (t) => {
      const u = parsesOrRejects(() => parseUptime(t), CgroupParseError);
      if (u !== null) expect(Number.isFinite(u.uptimeSec) && Number.isFinite(u.idleSec) && u.uptimeSec >= 0).toBe(true);
    }), RUNS);
  });

  it('parseCpuinfo', () => {
    const field = fc.tuple(fc.constantFrom('processor', 'model name', 'siblings', 'cpu cores', ''), fc.constantFrom('\t: ', ': ', ':', ' '), fc.oneof(hostileNumber, fc.string({ maxLength: 20 })))
      .map(([n, s, v]) => `${n}${s}${v}`);
    const text = fc.array(fc.oneof(field, fc.constant('')), { maxLength: 40 }).map((l) => `${l.join('\n')}\n`);
    fc.assert(fc.property(fc.oneof(text, anyText), (t) => {
      const blocks = parsesOrRejects(() => parseCpuinfo(t), CgroupParseError);
      if (blocks === null) return;
      const ids = blocks.map((b) => b.cpuId).filter((id): id is number => id !== null);
      for (const id of ids) expect(id >= 0 && id < MAX_CPU_COUNT).toBe(true);
      expect(new Set(ids).size).toBe(ids.length);
    }), RUNS);
  });

  it('parseCpuOnline', () => {
    fc.assert(fc.property(fc.oneof(anyText, hostileNumber.map((n) => `0-${n}\n`)), (t) => {
      const cpus = parsesOrRejects(() => parseCpuOnline(t), CgroupParseError);
      if (cpus !== null) {
        expect(cpus.length).toBeGreaterThan(0);
        for (const id of cpus) expect(id >= 0 && id < MAX_CPU_COUNT).toBe(true);
      }
    }), RUNS);
  });
});
