/**
 * Fuzz: the views keep their invariants for any valid snapshots. meminfo: nothing negative,
 * MemFree <= MemAvailable <= MemTotal, SwapFree <= SwapTotal, MemFree within the headroom up the
 * tree. stat: no column of any line ever goes backwards across successive renders, whatever the
 * host's counters, the cgroup's usage (resets included) and the visible CPUs do.
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CpuUsage, MemorySnapshot, MemoryStat } from '../../src/cgroup/snapshot';
import { parseMeminfo } from '../../src/host/meminfo';
import { parseStat, STAT_CPU_FIELDS } from '../../src/host/stat';
import type { HostStat, StatCpuTicks } from '../../src/host/snapshot';
import { renderMeminfo } from '../../src/views/meminfo';
import { renderStat, type StatHistory } from '../../src/views/stat';

const fixture = (name: string) => fs.readFileSync(path.join(__dirname, '../fixtures/proc', name), 'utf8');
const HOST_TEXT = fixture('meminfo');
const HOSTS = [
  parseMeminfo(HOST_TEXT),
  parseMeminfo(HOST_TEXT.replace(/^SwapTotal:.*$/m, 'SwapTotal:       8388608 kB').replace(/^SwapFree:.*$/m, 'SwapFree:        8000000 kB')),
  parseMeminfo(fixture('meminfo-3.12')), // no MemAvailable line
];

const bytes = fc.bigInt({ min: 0n, max: 1n << 50n });
const optionalBytes = fc.option(bytes, { nil: null });
const memoryStat: fc.Arbitrary<MemoryStat> = fc.record({
  anonBytes: bytes, fileBytes: bytes, shmemBytes: bytes, fileMappedBytes: bytes, fileDirtyBytes: bytes,
  fileWritebackBytes: bytes, swapCachedBytes: bytes, activeAnonBytes: bytes, inactiveAnonBytes: bytes,
  activeFileBytes: bytes, inactiveFileBytes: bytes, unevictableBytes: bytes, slabReclaimableBytes: bytes,
  slabUnreclaimableBytes: bytes, kernelStackBytes: bytes, pageTablesBytes: bytes, anonHugeBytes: bytes,
}).map((s) => ({ ...s, events: new Map() }));
const memorySnapshot: fc.Arbitrary<MemorySnapshot> = fc.record({
  limitBytes: optionalBytes, usageBytes: bytes, headroomBytes: optionalBytes, swapLimitBytes: optionalBytes,
  swapUsageBytes: bytes, swapHeadroomBytes: optionalBytes, swapAccounted: fc.boolean(), stat: memoryStat,
});

function values(text: string): Map<string, bigint> {
  return new Map(text.split('\n').filter(Boolean).map((line) => {
    const [key, value] = line.split(/:\s+/);
    return [key!, BigInt(value!.split(' ')[0]!)];
  }));
}

describe('fuzz: renderMeminfo', () => {
  it('keeps MemFree <= MemAvailable <= MemTotal, nothing negative, MemFree within the headroom', () => {
    fc.assert(fc.property(memorySnapshot, fc.constantFrom(...HOSTS), (memory, host) => {
      const v = values(renderMeminfo(host, memory));
      for (const [key, value] of v) expect(value >= 0n, key).toBe(true);
      const [total, free, available] = [v.get('MemTotal')!, v.get('MemFree')!, v.get('MemAvailable')!];
      expect(free <= available && available <= total).toBe(true);
      expect(total <= host.get('MemTotal')!).toBe(true);
      if (memory.headroomBytes !== null && memory.headroomBytes !== undefined) {
        expect(free <= memory.headroomBytes / 1024n).toBe(true);
      }
      expect(v.get('SwapFree')! <= v.get('SwapTotal')!).toBe(true);
      if (memory.swapHeadroomBytes !== null && memory.swapHeadroomBytes !== undefined && memory.swapAccounted) {
        expect(v.get('SwapFree')! <= memory.swapHeadroomBytes / 1024n + 1n).toBe(true);
      }
    }), { numRuns: 300 });
  });
});

const HOST_4 = parseStat(fixture('stat-4cpu'));
const FIELDS = STAT_CPU_FIELDS;

/** One step of the world: what each host CPU field advanced by (a small dip now and then, as
 *  nohz idle does), what the cgroup used per CPU, and which CPUs are shown. */
const step = fc.record({
  hostAdd: fc.array(fc.array(fc.integer({ min: -3, max: 400 }), { minLength: 10, maxLength: 10 }), { minLength: 4, maxLength: 4 }),
  usageAddTicks: fc.array(fc.tuple(fc.nat(300), fc.nat(300)), { minLength: 4, maxLength: 4 }),
  resetUsage: fc.integer({ min: 0, max: 9 }).map((n) => n === 0), // the cgroup recreated
  visible: fc.subarray([0, 1, 2, 3], { minLength: 1 }),
  v2: fc.boolean(),
  usageKnown: fc.boolean(),
});

function advance(host: HostStat, add: number[][]): HostStat {
  const perCpu = new Map<number, StatCpuTicks>();
  for (const [id, t] of host.perCpu) {
    const next = { ...t };
    FIELDS.forEach((f, i) => { next[f] = maxBig(0n, t[f] + BigInt(add[id]![i]!)); });
    perCpu.set(id, next);
  }
  const total = { ...host.total };
  for (const f of FIELDS) total[f] = [...perCpu.values()].reduce((a, t) => a + t[f], 0n);
  return { ...host, perCpu, total };
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function columns(text: string): Map<string, bigint[]> {
  return new Map(text.split('\n').filter((l) => l.startsWith('cpu')).map((l) => {
    const [name, ...rest] = l.split(/\s+/);
    return [name!, rest.map(BigInt)];
  }));
}

describe('fuzz: renderStat', () => {
  it('never moves a column of any cpu line backwards across renders', () => {
    fc.assert(fc.property(fc.array(step, { minLength: 2, maxLength: 12 }), (steps) => {
      let host = HOST_4;
      let perCpuNs = [0n, 0n, 0n, 0n].map(() => ({ userNs: 0n, systemNs: 0n }));
      let previous: StatHistory | null = null;
      let before = new Map<string, bigint[]>();
      for (const s of steps) {
        host = advance(host, s.hostAdd);
        perCpuNs = s.resetUsage
          ? perCpuNs.map(() => ({ userNs: 0n, systemNs: 0n }))
          : perCpuNs.map((c, i) => ({ userNs: c.userNs + BigInt(s.usageAddTicks[i]![0]) * 10_000_000n, systemNs: c.systemNs + BigInt(s.usageAddTicks[i]![1]) * 10_000_000n }));
        const userNs = perCpuNs.reduce((a, c) => a + c.userNs, 0n);
        const systemNs = perCpuNs.reduce((a, c) => a + c.systemNs, 0n);
        const usage: CpuUsage | null = !s.usageKnown ? null : { userNs, systemNs, perCpu: s.v2 ? null : perCpuNs };
        const { text, history } = renderStat({ host, visible: s.visible, usage, tasks: null, userHz: 100, previous });
        const now = columns(text);
        for (const [line, cols] of now) {
          for (const v of cols) expect(v >= 0n).toBe(true);
          const was = before.get(line);
          if (was) for (const [i, v] of cols.entries()) expect(v >= was[i]!, `${line} column ${i}: ${was[i]} -> ${v}`).toBe(true);
        }
        before = new Map([...before, ...now]);
        previous = history;
      }
    }), { numRuns: 80 });
  });
});
