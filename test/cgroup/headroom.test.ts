/**
 * Issue 10, item 8: MemFree is what the reader's cgroup can still be charged, which an
 * ancestor's limit shared with siblings can make less than its own MemTotal - usage.
 * c3 has a 500 MiB limit and 300 MiB charged (c3/svc holds 200 MiB, c3/init.scope 100 MiB);
 * a reader in c3/init.scope can allocate 200 MiB more, not 400.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readMemory } from '../../src/cgroup/read';
import type { MemorySnapshot } from '../../src/cgroup/snapshot';
import { parseMeminfo } from '../../src/host/meminfo';
import { renderMeminfo } from '../../src/views/meminfo';
import { renderSwaps } from '../../src/views/swaps';
import { MIB, copyFixtureTree, locationIn, writeTree } from './helpers';

const UNLIMITED_V1 = '9223372036854771712';
const HOST_MEMINFO = fs
  .readFileSync(path.join(__dirname, '../fixtures/proc/meminfo'), 'utf8')
  .replace(/^SwapTotal:.*$/m, 'SwapTotal:       4194304 kB')
  .replace(/^SwapFree:.*$/m, 'SwapFree:        4194304 kB');
const HOST_SWAPS = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda2                               partition\t4194304\t\t0\t\t-2\n';

function kbOf(text: string, key: string): number {
  const match = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text);
  if (!match) throw new Error(`${key} missing`);
  return Number(match[1]);
}

function v1Stat(hierarchicalLimit: string, hierarchicalMemsw: string, cacheBytes = 0n): string {
  return [
    `cache ${cacheBytes}`, 'rss 104857600', `hierarchical_memory_limit ${hierarchicalLimit}`,
    `hierarchical_memsw_limit ${hierarchicalMemsw}`, `total_cache ${cacheBytes}`, 'total_rss 104857600',
    'total_swap 0', `total_inactive_file ${cacheBytes}`, 'total_active_file 0', '',
  ].join('\n');
}

let root: string;
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function read(procCgroup: string): MemorySnapshot {
  const memory = readMemory(locationIn(root, procCgroup));
  if (memory === null) throw new Error('no memory snapshot');
  return memory;
}

describe('cgroup v1: headroom under a parent limit shared with a sibling', () => {
  beforeEach(() => {
    root = copyFixtureTree('v1');
    writeTree(root, {
      'memory/c3/memory.limit_in_bytes': `${500n * MIB}\n`,
      'memory/c3/memory.usage_in_bytes': `${300n * MIB}\n`,
      'memory/c3/memory.memsw.limit_in_bytes': `${600n * MIB}\n`,
      'memory/c3/memory.memsw.usage_in_bytes': `${340n * MIB}\n`, // 40 MiB of it swapped
      'memory/c3/memory.use_hierarchy': '1\n',
      'memory/c3/memory.stat': v1Stat(`${500n * MIB}`, `${600n * MIB}`),
      'memory/c3/svc/memory.limit_in_bytes': `${UNLIMITED_V1}\n`,
      'memory/c3/svc/memory.usage_in_bytes': `${200n * MIB}\n`,
      'memory/c3/init.scope/memory.limit_in_bytes': `${UNLIMITED_V1}\n`,
      'memory/c3/init.scope/memory.usage_in_bytes': `${100n * MIB}\n`,
      'memory/c3/init.scope/memory.memsw.limit_in_bytes': `${UNLIMITED_V1}\n`,
      'memory/c3/init.scope/memory.memsw.usage_in_bytes': `${100n * MIB}\n`,
      'memory/c3/init.scope/memory.use_hierarchy': '1\n',
      'memory/c3/init.scope/memory.stat': v1Stat(`${500n * MIB}`, `${600n * MIB}`),
    });
  });

  it("takes the headroom from the parent's limit minus the parent's usage", () => {
    const m = read('1:memory:/c3/init.scope');
    expect(m.limitBytes).toBe(500n * MIB);
    expect(m.usageBytes).toBe(100n * MIB);
    expect(m.headroomBytes).toBe(200n * MIB);
    expect(m.swapLimitBytes).toBe(100n * MIB); // memsw 600 - memory 500
    expect(m.swapHeadroomBytes).toBe(260n * MIB); // memsw 600 - 340 charged in c3
  });

  it('meminfo: MemFree and MemAvailable are what can still be allocated (200 MiB), not 400', () => {
    const text = renderMeminfo(parseMeminfo(HOST_MEMINFO), read('1:memory:/c3/init.scope'));
    expect(kbOf(text, 'MemTotal')).toBe(512000);
    expect(kbOf(text, 'MemFree')).toBe(204800);
    expect(kbOf(text, 'MemAvailable')).toBe(204800);
  });

  it("meminfo and /proc/swaps: memory+swap nearly full in the parent bounds MemFree and SwapFree", () => {
    writeTree(root, { 'memory/c3/memory.memsw.usage_in_bytes': `${560n * MIB}\n` });
    const m = read('1:memory:/c3/init.scope');
    expect(m.swapHeadroomBytes).toBe(40n * MIB);
    expect(m.headroomBytes).toBe(40n * MIB); // a new page is charged to memsw too
    const text = renderMeminfo(parseMeminfo(HOST_MEMINFO), m);
    expect(kbOf(text, 'MemFree')).toBe(40960);
    expect(kbOf(text, 'SwapTotal')).toBe(102400);
    expect(kbOf(text, 'SwapFree')).toBe(40960);
    const swaps = renderSwaps(HOST_SWAPS, m, 4194304n).split('\n')[1]!.split(/\s+/);
    expect([swaps[2], swaps[3]]).toEqual(['102400', String(102400 - 40960)]); // Size, Used
  });

  it('the own cgroup minus its usage still counts when it is the tighter', () => {
    writeTree(root, { 'memory/c3/init.scope/memory.limit_in_bytes': `${150n * MIB}\n`,
      'memory/c3/init.scope/memory.stat': v1Stat(`${150n * MIB}`, `${600n * MIB}`) });
    const m = read('1:memory:/c3/init.scope');
    expect(m.headroomBytes).toBe(50n * MIB);
    expect(kbOf(renderMeminfo(parseMeminfo(HOST_MEMINFO), m), 'MemFree')).toBe(51200);
  });

  it('stops above a parent without use_hierarchy (its charges do not include the child)', () => {
    writeTree(root, {
      'memory/c3/memory.use_hierarchy': '0\n',
      'memory/c3/init.scope/memory.limit_in_bytes': `${1024n * MIB}\n`,
      'memory/c3/init.scope/memory.stat': v1Stat(`${1024n * MIB}`, UNLIMITED_V1),
    });
    expect(read('1:memory:/c3/init.scope').headroomBytes).toBe(924n * MIB);
  });

  it('reads no ancestor when no limit is set anywhere', () => {
    writeTree(root, { 'memory/c3/init.scope/memory.stat': v1Stat(UNLIMITED_V1, UNLIMITED_V1) });
    const m = read('1:memory:/c3/init.scope');
    expect(m.headroomBytes).toBeNull();
    expect(m.swapHeadroomBytes).toBeNull();
  });
});

describe('cgroup v2: headroom under a parent limit shared with a sibling', () => {
  beforeEach(() => {
    root = copyFixtureTree('v2');
    const c3 = 'kubepods.slice/c3';
    writeTree(root, {
      [`${c3}/memory.max`]: `${500n * MIB}\n`,
      [`${c3}/memory.current`]: `${300n * MIB}\n`,
      [`${c3}/memory.swap.max`]: `${100n * MIB}\n`,
      [`${c3}/memory.swap.current`]: `${70n * MIB}\n`,
      [`${c3}/memory.stat`]: 'anon 314572800\nfile 0\n',
      [`${c3}/svc/memory.max`]: 'max\n',
      [`${c3}/svc/memory.current`]: `${200n * MIB}\n`,
      [`${c3}/init.scope/memory.max`]: 'max\n',
      [`${c3}/init.scope/memory.current`]: `${100n * MIB}\n`,
      [`${c3}/init.scope/memory.swap.max`]: 'max\n',
      [`${c3}/init.scope/memory.swap.current`]: `${10n * MIB}\n`,
      [`${c3}/init.scope/memory.stat`]: 'anon 104857600\nfile 0\n',
    });
  });

  it("takes the headroom from the parent's memory.max minus its memory.current", () => {
    const m = read('0::/kubepods.slice/c3/init.scope');
    expect(m.limitBytes).toBe(500n * MIB); // kubepods.slice's own limit is looser
    expect(m.headroomBytes).toBe(200n * MIB);
    expect(m.swapHeadroomBytes).toBe(30n * MIB);
  });

  it('meminfo shows MemFree = MemAvailable = 200 MiB, SwapFree = 30 MiB', () => {
    const text = renderMeminfo(parseMeminfo(HOST_MEMINFO), read('0::/kubepods.slice/c3/init.scope'));
    expect(kbOf(text, 'MemTotal')).toBe(512000);
    expect(kbOf(text, 'MemFree')).toBe(204800);
    expect(kbOf(text, 'MemAvailable')).toBe(204800);
    expect(kbOf(text, 'SwapTotal')).toBe(102400);
    expect(kbOf(text, 'SwapFree')).toBe(30720);
  });

  it('reads a memory.max at or past 2^62 as no limit', () => {
    writeTree(root, { 'kubepods.slice/c3/memory.max': '9223372036854775807\n' });
    const m = read('0::/kubepods.slice/c3/init.scope');
    expect(m.limitBytes).not.toBe(9223372036854775807n);
    expect(m.headroomBytes).not.toBe(9223372036854775807n - 300n * MIB);
  });
});
