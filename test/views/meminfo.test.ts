import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readMemory } from '../../src/cgroup/read';
import type { MemorySnapshot } from '../../src/cgroup/snapshot';
import { parseMeminfo } from '../../src/host/meminfo';
import type { HostMeminfo } from '../../src/host/snapshot';
import { formatMeminfoLine, renderMeminfo } from '../../src/views/meminfo';
import { MIB, v1Location, v2Location } from '../cgroup/helpers';
import { emptyMemoryStat as emptyStat } from './memoryFixtures';

const PROC_FIXTURES = path.join(__dirname, '../fixtures/proc');
/** This machine's /proc/meminfo (Linux 6.x, 24 GiB, no swap). */
const HOST_TEXT = readFileSync(path.join(PROC_FIXTURES, 'meminfo'), 'utf8');
const host = parseMeminfo(HOST_TEXT);
/** A Linux 3.12 /proc/meminfo: no MemAvailable yet (3.14), has HardwareCorrupted. */
const OLD_HOST_TEXT = readFileSync(path.join(PROC_FIXTURES, 'meminfo-3.12'), 'utf8');

/** The same host with 8 GiB of swap (CommitLimit grows by the swap, as the kernel computes it). */
const SWAP_KB = 8388604n;
const hostWithSwap = parseMeminfo(
  HOST_TEXT.replace(/^SwapTotal:.*$/m, formatMeminfoLine('SwapTotal', SWAP_KB, 'kB').trimEnd())
    .replace(/^SwapFree:.*$/m, formatMeminfoLine('SwapFree', SWAP_KB, 'kB').trimEnd())
    .replace(/^CommitLimit:.*$/m, formatMeminfoLine('CommitLimit', 12341828n + SWAP_KB, 'kB').trimEnd()),
);

/** Lines allowed above MemTotal (see the header of src/views/meminfo.ts). */
const MAY_EXCEED_TOTAL = new Set(['Hugepagesize', 'VmallocTotal', 'VmallocChunk', 'SwapTotal', 'SwapFree', 'CommitLimit']);

function parsed(text: string): Map<string, bigint> {
  return new Map(parseMeminfo(text).lines.map((l) => [l.key, l.value]));
}

function snapshot(memory: MemorySnapshot | null): MemorySnapshot {
  if (memory === null) throw new Error('fixture has no memory controller');
  return memory;
}


/** Every invariant the view promises, for any host and snapshot: the ones `text` breaks. */
function invariantViolations(hostInfo: HostMeminfo, text: string): string[] {
  const violations: string[] = [];
  const values = parsed(text);
  const total = values.get('MemTotal')!;
  if (!(total <= hostInfo.get('MemTotal')!)) violations.push(`MemTotal ${total} exceeds the host's ${hostInfo.get('MemTotal')}`);
  for (const [key, value] of values) {
    if (!(value >= 0n)) violations.push(`${key} is negative`);
    const bounded = !(MAY_EXCEED_TOTAL.has(key) || key.startsWith('HugePages_'));
    if (bounded && !(value <= total)) violations.push(`${key} = ${value} exceeds MemTotal ${total}`);
  }
  const free = values.get('MemFree')!;
  const available = values.get('MemAvailable')!;
  if (!(free <= available)) violations.push(`MemFree ${free} > MemAvailable ${available}`);
  if (!(available <= total)) violations.push(`MemAvailable ${available} > MemTotal ${total}`);
  const swapFree = values.get('SwapFree')!;
  const swapTotal = values.get('SwapTotal')!;
  if (!(swapFree <= swapTotal)) violations.push(`SwapFree ${swapFree} > SwapTotal ${swapTotal}`);
  // Every host key, in the host's order (plus MemAvailable after MemFree if the host lacks it).
  const keys = hostInfo.lines.map((l) => l.key);
  if (!keys.includes('MemAvailable')) keys.splice(keys.indexOf('MemFree') + 1, 0, 'MemAvailable');
  const shown = [...values.keys()];
  if (shown.join('\n') !== keys.join('\n')) violations.push(`keys ${shown.join(' ')} are not the host's ${keys.join(' ')}`);
  return violations;
}

describe('renderMeminfo for a 256 MiB v1 cgroup (100 MiB used)', () => {
  const memory = snapshot(readMemory(v1Location('v1', '/limited')));
  const text = renderMeminfo(host, memory);
  const values = parsed(text);

  it('shows MemTotal 262144 kB in the kernel format', () => {
    expect(text.startsWith('MemTotal:         262144 kB\nMemFree:          159744 kB\n')).toBe(true);
  });

  it('keeps every host key in order, no value negative or above MemTotal', () => {
    expect(invariantViolations(host, text)).toEqual([]);
  });

  it("derives each line from the cgroup's own accounting", () => {
    expect(Object.fromEntries([...values].filter(([k]) => EXPECTED_V1[k] !== undefined))).toEqual(EXPECTED_V1);
  });

  it('bounds the lines it cannot compute by the container figure they belong to, or MemTotal', () => {
    expect(values.get('Mlocked')).toBe(0n); // host 11400 kB, but the container has no unevictable pages
    expect(values.get('DirectMap1G')).toBe(262144n); // host 25165824
    expect(values.get('Committed_AS')).toBe(host.get('Committed_AS')); // 59004 < MemTotal
    expect(values.get('VmallocTotal')).toBe(34359738367n); // address space, passed through
    expect(values.get('Hugepagesize')).toBe(2048n);
  });

  it('ends every line with a newline and nothing else', () => {
    expect(text.endsWith(' kB\n')).toBe(true);
    expect(text.split('\n')).toHaveLength(host.lines.length + 1);
  });
});

/** Expected kB for /limited: 100 MiB used = 50 anon + 40 cache (4 of it tmpfs) + 10 kernel. */
const EXPECTED_V1: Record<string, bigint> = {
  MemTotal: 262144n,
  MemFree: 159744n, // 256 - 100 MiB
  MemAvailable: 196608n, // free + active_file 24 MiB + inactive_file 12 MiB
  Buffers: 0n,
  Cached: 40960n, // total_cache, tmpfs included as in the kernel's Cached
  SwapCached: 64n,
  Active: 34816n, // 10 MiB anon + 24 MiB file
  Inactive: 57344n, // 44 + 12 MiB
  'Active(anon)': 10240n,
  'Inactive(anon)': 45056n,
  'Active(file)': 24576n,
  'Inactive(file)': 12288n,
  Unevictable: 0n,
  SwapTotal: 0n, // the host has no swap
  SwapFree: 0n,
  Dirty: 128n,
  Writeback: 0n,
  AnonPages: 51200n,
  Mapped: 8192n,
  Shmem: 4096n,
  KReclaimable: 0n, // v1 reports no slab
  Slab: 0n,
  SReclaimable: 0n,
  SUnreclaim: 0n,
  KernelStack: 0n,
  PageTables: 0n,
  CommitLimit: 131072n, // host RAM part 12341828 kB = 50% of MemTotal -> 50% of 256 MiB, no swap
  AnonHugePages: 20480n,
};

describe('renderMeminfo for a v2 cgroup under a 256 MiB parent', () => {
  const memory = snapshot(readMemory(v2Location('/kubepods.slice/pod-a.slice/container-a.scope')));
  const values = parsed(renderMeminfo(host, memory));

  it('shows the parent limit and v2 slab, kernel stack and page tables', () => {
    expect(values.get('MemTotal')).toBe(262144n);
    expect(values.get('MemFree')).toBe(159744n);
    expect(values.get('MemAvailable')).toBe(199680n); // + 24 + 12 MiB file + 3 MiB reclaimable slab
    expect(values.get('SReclaimable')).toBe(3072n);
    expect(values.get('KReclaimable')).toBe(3072n);
    expect(values.get('SUnreclaim')).toBe(2048n);
    expect(values.get('Slab')).toBe(5120n);
    expect(values.get('KernelStack')).toBe(1024n);
    expect(values.get('PageTables')).toBe(2048n);
  });

  it('shows no swap when swap.max is 0, even on a host with swap', () => {
    const withSwap = parsed(renderMeminfo(hostWithSwap, memory));
    expect(withSwap.get('SwapTotal')).toBe(0n);
    expect(withSwap.get('SwapFree')).toBe(0n);
  });
});

describe('renderMeminfo and swap', () => {
  const limited = snapshot(readMemory(v1Location('v1', '/limited'))); // swap limit 256 MiB, 4 MiB used

  it("shows the cgroup's swap limit and usage on a host with swap", () => {
    const values = parsed(renderMeminfo(hostWithSwap, limited));
    expect(values.get('SwapTotal')).toBe(262144n);
    expect(values.get('SwapFree')).toBe(258048n);
    expect(values.get('CommitLimit')).toBe(131072n + 262144n); // RAM share + the container's swap
    expect(invariantViolations(hostWithSwap, renderMeminfo(hostWithSwap, limited))).toEqual([]);
  });

  it('shows no swap when the kernel does not account it for the cgroup', () => {
    const noswap = snapshot(readMemory(v1Location('v1-noswap', '/box')));
    const values = parsed(renderMeminfo(hostWithSwap, noswap));
    expect(values.get('SwapTotal')).toBe(0n);
    expect(values.get('SwapFree')).toBe(0n);
  });

  it('bounds Zswap and Zswapped by the swap the container uses', () => {
    const hostZswap = parseMeminfo(
      hostWithSwap.lines
        .map((l) => formatMeminfoLine(l.key, l.key.startsWith('Zswap') ? 900000n : l.value, l.unit))
        .join(''),
    );
    const values = parsed(renderMeminfo(hostZswap, limited));
    expect(values.get('Zswap')).toBe(4096n);
    expect(values.get('Zswapped')).toBe(4096n);
  });
});

describe('renderMeminfo without a limit', () => {
  const unlimited = snapshot(readMemory(v1Location('v1', '/unlimited'))); // 24 MiB + 4 KiB used

  it("shows the host's MemTotal and never more available memory than the host has", () => {
    const values = parsed(renderMeminfo(host, unlimited));
    expect(values.get('MemTotal')).toBe(host.get('MemTotal'));
    // host MemTotal - 24580 kB would exceed the host's own MemAvailable (24368196 kB)
    expect(values.get('MemAvailable')).toBe(host.get('MemAvailable'));
    expect(values.get('MemFree')).toBe(host.get('MemAvailable'));
    expect(values.get('Cached')).toBe(8192n);
    expect(invariantViolations(host, renderMeminfo(host, unlimited))).toEqual([]);
  });
});

describe('renderMeminfo edge cases', () => {
  it('keeps MemFree at 0 when usage is above the limit (limit lowered below usage)', () => {
    const memory: MemorySnapshot = {
      limitBytes: 64n * MIB, usageBytes: 100n * MIB, swapLimitBytes: null, swapUsageBytes: 0n, swapAccounted: true,
      stat: emptyStat({ fileBytes: 90n * MIB, activeFileBytes: 80n * MIB, inactiveFileBytes: 10n * MIB, anonBytes: 10n * MIB }),
    };
    const text = renderMeminfo(host, memory);
    const values = parsed(text);
    expect(values.get('MemFree')).toBe(0n);
    expect(values.get('MemAvailable')).toBe(65536n); // 90 MiB of file LRU, capped at MemTotal
    expect(values.get('Cached')).toBe(65536n);
    expect(invariantViolations(host, text)).toEqual([]);
  });

  it('prints MemAvailable after MemFree when the host kernel has none (before 3.14)', () => {
    const old = parseMeminfo(OLD_HOST_TEXT);
    const memory = snapshot(readMemory(v1Location('v1', '/limited')));
    const text = renderMeminfo(old, memory);
    expect(text.split('\n').slice(0, 4)).toEqual([
      'MemTotal:         262144 kB',
      'MemFree:          159744 kB',
      'MemAvailable:     196608 kB',
      'Buffers:               0 kB',
    ]);
    expect(text).toContain('\nHardwareCorrupted:     0 kB\n');
    expect(invariantViolations(old, text)).toEqual([]);
  });

  it('keeps every invariant for arbitrary snapshots', () => {
    let seed = 12345;
    const random = (maxMib: number): bigint => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return (BigInt(seed % (maxMib + 1)) * MIB) + BigInt(seed % 4096);
    };
    for (let i = 0; i < 300; i++) {
      const memory: MemorySnapshot = {
        limitBytes: i % 5 === 0 ? null : random(40_000),
        usageBytes: random(40_000),
        swapLimitBytes: i % 3 === 0 ? null : random(10_000),
        swapUsageBytes: random(10_000),
        swapAccounted: i % 7 !== 0,
        stat: emptyStat({
          anonBytes: random(30_000), fileBytes: random(30_000), shmemBytes: random(1000),
          fileMappedBytes: random(1000), fileDirtyBytes: random(100), swapCachedBytes: random(100),
          activeAnonBytes: random(30_000), inactiveAnonBytes: random(30_000),
          activeFileBytes: random(30_000), inactiveFileBytes: random(30_000),
          unevictableBytes: random(100), slabReclaimableBytes: random(1000),
          slabUnreclaimableBytes: random(1000), kernelStackBytes: random(10), pageTablesBytes: random(10),
          anonHugeBytes: random(1000),
        }),
      };
      for (const h of [host, hostWithSwap]) expect(invariantViolations(h, renderMeminfo(h, memory)), `snapshot ${i}`).toEqual([]);
    }
  });
});

describe('formatMeminfoLine', () => {
  it.each([
    ['meminfo', HOST_TEXT],
    ['meminfo-3.12', OLD_HOST_TEXT],
  ])("reproduces the kernel's file %s byte for byte", (_name, text) => {
    const lines = parseMeminfo(text).lines;
    expect(lines.map((l) => formatMeminfoLine(l.key, l.value, l.unit)).join('')).toBe(text);
  });

  it('pads the key to 16 columns and right-aligns the value in 8, like "%8lu kB"', () => {
    expect(formatMeminfoLine('MemTotal', 262144n, 'kB')).toBe('MemTotal:         262144 kB\n');
    expect(formatMeminfoLine('Active(anon)', 0n, 'kB')).toBe('Active(anon):          0 kB\n');
    expect(formatMeminfoLine('VmallocTotal', 34359738367n, 'kB')).toBe('VmallocTotal:   34359738367 kB\n');
  });

  it('uses the narrower kernel layouts of HugePages_* and HardwareCorrupted', () => {
    expect(formatMeminfoLine('HugePages_Total', 0n, '')).toBe('HugePages_Total:       0\n');
    expect(formatMeminfoLine('HugePages_Free', 123456n, '')).toBe('HugePages_Free:    123456\n');
    expect(formatMeminfoLine('HardwareCorrupted', 4n, 'kB')).toBe('HardwareCorrupted:     4 kB\n');
  });
});
