/**
 * Fuzz: the cgroup readers (v1 and v2 memory, cpu, cpuacct, cpuset) with one file of a real
 * fixture tree replaced by arbitrary or hostile text per run.
 */
import fs from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCpuLimits, readCpuUsage, readMemory } from '../../src/cgroup/read';
import { CgroupParseError, type CgroupLocation, type MemorySnapshot } from '../../src/cgroup/snapshot';
import { V1_UNLIMITED_THRESHOLD } from '../../src/cgroup/parse';
import { copyFixtureTree, locationIn } from '../cgroup/helpers';
import { anyText, hostileNumber, keyedLines, parsesOrRejects } from './arbitraries';

const CPU_COUNT = 8; // test/fixtures/sys: possible = 0-7
const RUNS = { numRuns: 60 };

let v1: string;
let v2: string;
beforeAll(() => { v1 = copyFixtureTree('v1'); v2 = copyFixtureTree('v2'); });
afterAll(() => { fs.rmSync(v1, { recursive: true, force: true }); fs.rmSync(v2, { recursive: true, force: true }); });

function v1Loc(): CgroupLocation {
  return locationIn(v1, '1:memory:/parent/child\n2:cpu,cpuacct:/parent/child\n3:cpuset:/parent/child\n');
}
function v2Loc(): CgroupLocation {
  return locationIn(v2, '0::/kubepods.slice/pod-a.slice/container-a.scope\n');
}

/** Writes `text` over `file` for one check, then puts the original back. */
function withFile(file: string, text: string, check: () => void): void {
  const original = fs.readFileSync(file);
  fs.writeFileSync(file, text);
  try { check(); } finally { fs.writeFileSync(file, original); }
}

function expectMemoryInRange(m: MemorySnapshot | null): void {
  if (m === null) return;
  const limits = [m.limitBytes, m.swapLimitBytes];
  for (const l of limits) if (l !== null) expect(l >= 0n && l < V1_UNLIMITED_THRESHOLD).toBe(true);
  for (const h of [m.headroomBytes, m.swapHeadroomBytes]) if (h !== null && h !== undefined) expect(h >= 0n).toBe(true);
  expect(m.usageBytes >= 0n && m.swapUsageBytes >= 0n).toBe(true);
  for (const [key, value] of Object.entries(m.stat)) {
    if (key !== 'events') expect(value as bigint >= 0n).toBe(true);
  }
}

const memoryStatKeys = ['cache', 'rss', 'total_cache', 'total_rss', 'total_swap', 'hierarchical_memory_limit', 'hierarchical_memsw_limit', 'total_active_file', 'anon', 'file', 'slab_reclaimable'];
const statText = fc.oneof(keyedLines(memoryStatKeys), anyText);
const valueText = fc.oneof(hostileNumber.map((n) => `${n}\n`), anyText);
const usageAll = fc.array(fc.tuple(hostileNumber, hostileNumber, hostileNumber).map((f) => f.join(' ')), { maxLength: 12 })
  .map((lines) => `cpu user system\n${lines.join('\n')}\n`);
const cpuList = fc.array(fc.oneof(hostileNumber, fc.tuple(hostileNumber, hostileNumber).map(([a, b]) => `${a}-${b}`)), { maxLength: 8 })
  .map((parts) => `${parts.join(',')}\n`);

describe('fuzz: cgroup v1 readers', () => {
  it.each([
    ['memory/parent/child/memory.stat', statText],
    ['memory/parent/child/memory.usage_in_bytes', valueText],
    ['memory/parent/child/memory.limit_in_bytes', valueText],
    ['memory/parent/memory.usage_in_bytes', valueText],
    ['memory/parent/memory.memsw.usage_in_bytes', valueText],
  ] as const)('readMemory with a hostile %s', (file, text) => {
    fc.assert(fc.property(text, (t) => withFile(`${v1}/${file}`, t, () => {
      expectMemoryInRange(parsesOrRejects(() => readMemory(v1Loc()), CgroupParseError));
    })), RUNS);
  });

  it.each([
    ['cpu,cpuacct/parent/child/cpuacct.usage_all', fc.oneof(usageAll, anyText)],
    ['cpu,cpuacct/parent/child/cpu.cfs_quota_us', valueText],
    ['cpu,cpuacct/parent/cpu.cfs_period_us', valueText],
    ['cpuset/parent/child/cpuset.effective_cpus', fc.oneof(cpuList, anyText)],
  ] as const)('readCpuUsage and readCpuLimits with a hostile %s', (file, text) => {
    fc.assert(fc.property(text, (t) => withFile(`${v1}/${file}`, t, () => {
      const usage = parsesOrRejects(() => readCpuUsage(v1Loc()), CgroupParseError);
      if (usage?.perCpu) {
        expect(usage.perCpu.length).toBeLessThanOrEqual(CPU_COUNT);
        for (const c of usage.perCpu) expect(c.userNs >= 0n && c.systemNs >= 0n).toBe(true);
      }
      const limits = parsesOrRejects(() => readCpuLimits(v1Loc()), CgroupParseError);
      if (limits?.cpusetCpus) for (const id of limits.cpusetCpus) expect(id >= 0 && id < CPU_COUNT).toBe(true);
      if (limits && limits.quotaCpus !== null) expect(Number.isNaN(limits.quotaCpus) || limits.quotaCpus < 0).toBe(false);
    })), RUNS);
  });
});

describe('fuzz: cgroup v2 readers', () => {
  const scope = 'kubepods.slice/pod-a.slice/container-a.scope';
  it.each([
    [`${scope}/memory.stat`, statText],
    [`${scope}/memory.current`, valueText],
    [`${scope}/memory.max`, fc.oneof(valueText, fc.constant('max\n'))],
    ['kubepods.slice/pod-a.slice/memory.max', fc.oneof(valueText, fc.constant('max\n'))],
    [`${scope}/memory.swap.current`, valueText],
  ] as const)('readMemory with a hostile %s', (file, text) => {
    fc.assert(fc.property(text, (t) => withFile(`${v2}/${file}`, t, () => {
      expectMemoryInRange(parsesOrRejects(() => readMemory(v2Loc()), CgroupParseError));
    })), RUNS);
  });

  it.each([
    [`${scope}/cpu.max`, fc.oneof(fc.tuple(hostileNumber, hostileNumber).map(([a, b]) => `${a} ${b}\n`), anyText)],
    [`${scope}/cpu.stat`, fc.oneof(keyedLines(['usage_usec', 'user_usec', 'system_usec']), anyText)],
    ['kubepods.slice/pod-a.slice/cpuset.cpus.effective', fc.oneof(cpuList, anyText)],
  ] as const)('readCpuUsage and readCpuLimits with a hostile %s', (file, text) => {
    fc.assert(fc.property(text, (t) => withFile(`${v2}/${file}`, t, () => {
      parsesOrRejects(() => readCpuUsage(v2Loc()), CgroupParseError);
      const limits = parsesOrRejects(() => readCpuLimits(v2Loc()), CgroupParseError);
      if (limits?.cpusetCpus) for (const id of limits.cpusetCpus) expect(id >= 0 && id < CPU_COUNT).toBe(true);
    })), RUNS);
  });
});
