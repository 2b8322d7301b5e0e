import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MemorySnapshot, MemoryStat } from '../../src/cgroup/snapshot';
import { parseVmstat } from '../../src/host/vmstat';
import { renderVmstat } from '../../src/views/vmstat';

const PAGE = 4096n;
const MIB = 1024n * 1024n;
/** This machine's MemTotal when the fixture was copied. */
const HOST_MEM_TOTAL_KB = 24683656n;
const host = parseVmstat(readFileSync(path.join(__dirname, '../fixtures/proc/vmstat'), 'utf8'));

/**
 * A cgroup v2 memory.stat (kernel 6.x format, Documentation/admin-guide/cgroup-v2.rst),
 * turned into a MemorySnapshot by hand the way the v2 reader normalises it.
 */
const V2_MEMORY_STAT = `anon 104857600
file 209715200
kernel 12582912
kernel_stack 1048576
pagetables 2097152
sec_pagetables 0
percpu 245760
sock 0
vmalloc 0
shmem 4194304
zswap 0
zswapped 0
file_mapped 52428800
file_dirty 1048576
file_writeback 8192
swapcached 4096
anon_thp 41943040
file_thp 0
shmem_thp 0
inactive_anon 79691776
active_anon 25165824
inactive_file 157286400
active_file 52428800
unevictable 16384
slab_reclaimable 6291456
slab_unreclaimable 2101248
slab 8392704
workingset_refault_anon 12
workingset_refault_file 3456
workingset_activate_anon 3
workingset_activate_file 789
workingset_restore_anon 1
workingset_restore_file 234
workingset_nodereclaim 5
pswpin 40
pswpout 160
pgscan 5000
pgsteal 4500
pgscan_kswapd 3000
pgscan_direct 2000
pgscan_khugepaged 0
pgsteal_kswapd 2800
pgsteal_direct 1700
pgsteal_khugepaged 0
pgfault 987654
pgmajfault 321
pgrefill 777
pgactivate 8888
pgdeactivate 999
pglazyfree 0
pglazyfreed 0
zswpin 0
zswpout 0
zswpwb 0
thp_fault_alloc 20
thp_collapse_alloc 2
thp_swpout 0
thp_swpout_fallback 0
`;

const V2_BYTE_KEYS = new Set(
  ('anon file kernel kernel_stack pagetables sec_pagetables percpu sock vmalloc shmem zswap ' +
    'zswapped file_mapped file_dirty file_writeback swapcached anon_thp file_thp shmem_thp ' +
    'inactive_anon active_anon inactive_file active_file unevictable slab_reclaimable ' +
    'slab_unreclaimable slab').split(' '),
);

function v2Stat(text: string): MemoryStat {
  const raw = new Map(
    text
      .trimEnd()
      .split('\n')
      .map((line) => line.split(' ') as [string, string])
      .map(([k, v]) => [k, BigInt(v)] as const),
  );
  const bytes = (key: string) => raw.get(key) ?? 0n;
  const events = new Map([...raw].filter(([key]) => !V2_BYTE_KEYS.has(key)));
  return {
    anonBytes: bytes('anon'),
    fileBytes: bytes('file'),
    shmemBytes: bytes('shmem'),
    fileMappedBytes: bytes('file_mapped'),
    fileDirtyBytes: bytes('file_dirty'),
    fileWritebackBytes: bytes('file_writeback'),
    swapCachedBytes: bytes('swapcached'),
    activeAnonBytes: bytes('active_anon'),
    inactiveAnonBytes: bytes('inactive_anon'),
    activeFileBytes: bytes('active_file'),
    inactiveFileBytes: bytes('inactive_file'),
    unevictableBytes: bytes('unevictable'),
    slabReclaimableBytes: bytes('slab_reclaimable'),
    slabUnreclaimableBytes: bytes('slab_unreclaimable'),
    kernelStackBytes: bytes('kernel_stack'),
    pageTablesBytes: bytes('pagetables'),
    anonHugeBytes: bytes('anon_thp'),
    events,
  };
}

function memory(overrides: Partial<MemorySnapshot> = {}): MemorySnapshot {
  return {
    limitBytes: 512n * MIB,
    usageBytes: 327155712n,
    swapLimitBytes: 256n * MIB,
    swapUsageBytes: 655360n,
    swapAccounted: true,
    stat: v2Stat(V2_MEMORY_STAT),
    ...overrides,
  };
}

/** Render and parse back: proves the output is in the kernel's format. */
function render(m: MemorySnapshot, blockIo: { readBytes: bigint; writeBytes: bigint } | null = null) {
  const text = renderVmstat({ host, memory: m, pageSizeBytes: PAGE, hostMemTotalKb: HOST_MEM_TOTAL_KB, blockIo });
  return { text, parsed: parseVmstat(text) };
}

describe('renderVmstat', () => {
  it('emits every key of the host file, in the host order, as "key value" lines', () => {
    const { text, parsed } = render(memory());
    expect(parsed.entries.map(([k]) => k)).toEqual(host.entries.map(([k]) => k));
    expect(text.endsWith('\n')).toBe(true);
    expect(text).toMatch(/^([a-z0-9_]+ \d+\n)+$/);
  });

  it('shows the cgroup LRU, file, anon, slab and page-table gauges in pages', () => {
    const { parsed } = render(memory());
    const expectPages: [string, bigint][] = [
      ['nr_inactive_anon', 79691776n],
      ['nr_active_anon', 25165824n],
      ['nr_inactive_file', 157286400n],
      ['nr_active_file', 52428800n],
      ['nr_unevictable', 16384n],
      ['nr_anon_pages', 104857600n],
      ['nr_file_pages', 209715200n],
      ['nr_mapped', 52428800n],
      ['nr_shmem', 4194304n],
      ['nr_dirty', 1048576n],
      ['nr_writeback', 8192n],
      ['nr_slab_reclaimable', 6291456n],
      ['nr_slab_unreclaimable', 2101248n],
      ['nr_page_table_pages', 2097152n],
      ['nr_swapcached', 4096n],
    ];
    for (const [key, bytes] of expectPages) expect([key, parsed.get(key)]).toEqual([key, bytes / PAGE]);
  });

  it('repeats the LRU gauges in the nr_zone_* lines, write_pending = dirty + writeback', () => {
    const { parsed } = render(memory());
    for (const lru of ['inactive_anon', 'active_anon', 'inactive_file', 'active_file', 'unevictable']) {
      expect(parsed.get(`nr_zone_${lru}`)).toBe(parsed.get(`nr_${lru}`));
    }
    expect(parsed.get('nr_zone_write_pending')).toBe(256n + 2n);
  });

  it('prints nr_kernel_stack in kB and nr_anon_transparent_hugepages in 2 MiB pages, like the kernel', () => {
    const { parsed } = render(memory());
    expect(parsed.get('nr_kernel_stack')).toBe(1024n);
    expect(parsed.get('nr_anon_transparent_hugepages')).toBe(20n);
  });

  it('derives nr_free_pages from MemTotal - usage with MemTotal = min(limit, host MemTotal)', () => {
    expect(render(memory()).parsed.get('nr_free_pages')).toBe((512n * MIB - 327155712n) / PAGE);
    // No limit: the host's MemTotal, as meminfo shows it.
    expect(render(memory({ limitBytes: null })).parsed.get('nr_free_pages')).toBe(
      (HOST_MEM_TOTAL_KB * 1024n - 327155712n) / PAGE,
    );
    // A limit above the host's RAM is the host's RAM.
    expect(render(memory({ limitBytes: 1n << 50n })).parsed.get('nr_free_pages')).toBe(
      (HOST_MEM_TOTAL_KB * 1024n - 327155712n) / PAGE,
    );
  });

  it('never goes negative, even with usage above the limit', () => {
    const { parsed } = render(memory({ limitBytes: 100n * MIB }));
    expect(parsed.get('nr_free_pages')).toBe(0n);
    for (const [, value] of parsed.entries) expect(value).toBeGreaterThanOrEqual(0n);
  });

  it('takes event counters from the cgroup, not the host', () => {
    const { parsed } = render(memory());
    const fromCgroup: [string, bigint][] = [
      ['pgfault', 987654n],
      ['pgmajfault', 321n],
      ['workingset_refault_anon', 12n],
      ['workingset_refault_file', 3456n],
      ['workingset_activate_file', 789n],
      ['workingset_restore_file', 234n],
      ['workingset_nodereclaim', 5n],
      ['pswpin', 40n],
      ['pswpout', 160n],
      ['pgscan_kswapd', 3000n],
      ['pgscan_direct', 2000n],
      ['pgsteal_kswapd', 2800n],
      ['pgsteal_direct', 1700n],
      ['pgrefill', 777n],
      ['pgactivate', 8888n],
      ['pgdeactivate', 999n],
      ['thp_fault_alloc', 20n],
      ['thp_collapse_alloc', 2n],
    ];
    for (const [key, value] of fromCgroup) expect([key, parsed.get(key)]).toEqual([key, value]);
    // The host's pgfault is not the cgroup's: the value really came from the snapshot.
    expect(host.get('pgfault')).not.toBe(987654n);
  });

  it('shows 0 for host-wide counters the memcg does not keep', () => {
    const { parsed } = render(memory());
    const hostWide = [
      'numa_hit',
      'numa_local',
      'pgalloc_normal',
      'pgfree',
      'pgreuse',
      'nr_mlock',
      'nr_free_pages_blocks',
      'nr_dirtied',
      'nr_written',
      'unevictable_pgs_culled',
      'slabs_scanned',
      'nr_foll_pin_acquired',
      'nr_memmap_boot_pages',
      'direct_map_level2_splits',
    ];
    for (const key of hostWide) {
      expect(host.get(key)).toBeDefined();
      expect([key, parsed.get(key)]).toEqual([key, 0n]);
    }
    // The fixture has non-zero host values for most of them: a pass-through would fail above.
    expect(hostWide.filter((k) => host.get(k)! > 0n).length).toBeGreaterThan(8);
  });

  it('takes pgpgin/pgpgout from block I/O bytes in KiB, never from memcg charge events', () => {
    const stat = v2Stat(V2_MEMORY_STAT);
    // What a v1 reader finds in memory.stat: pages charged/uncharged, not disk I/O.
    stat.events.set('pgpgin', 5_000_000n);
    stat.events.set('pgpgout', 4_000_000n);
    const withoutIo = render(memory({ stat })).parsed;
    expect(withoutIo.get('pgpgin')).toBe(0n);
    expect(withoutIo.get('pgpgout')).toBe(0n);
    const withIo = render(memory({ stat }), { readBytes: 10n * MIB + 512n, writeBytes: 3n * MIB }).parsed;
    expect(withIo.get('pgpgin')).toBe(10n * 1024n);
    expect(withIo.get('pgpgout')).toBe(3n * 1024n);
  });

  it('scales the dirty thresholds by the container share of RAM', () => {
    const { parsed } = render(memory());
    const share = (threshold: bigint) => (threshold * 512n * MIB) / (HOST_MEM_TOTAL_KB * 1024n);
    expect(parsed.get('nr_dirty_threshold')).toBe(share(host.get('nr_dirty_threshold')!));
    expect(parsed.get('nr_dirty_background_threshold')).toBe(share(host.get('nr_dirty_background_threshold')!));
    expect(parsed.get('nr_dirty_threshold')).toBeLessThan((512n * MIB) / PAGE);
    // Unlimited: the host's thresholds.
    const unlimited = render(memory({ limitBytes: null })).parsed;
    expect(unlimited.get('nr_dirty_threshold')).toBe(host.get('nr_dirty_threshold'));
  });

  it('shows 0 for v2-only gauges and events a v1 snapshot does not have', () => {
    const v1Like = memory({
      stat: {
        ...v2Stat(V2_MEMORY_STAT),
        slabReclaimableBytes: 0n,
        slabUnreclaimableBytes: 0n,
        kernelStackBytes: 0n,
        pageTablesBytes: 0n,
        events: new Map([
          ['pgfault', 42n],
          ['pgmajfault', 1n],
        ]),
      },
    });
    const { parsed } = render(v1Like);
    expect(parsed.get('pgfault')).toBe(42n);
    for (const key of ['nr_slab_reclaimable', 'nr_kernel_stack', 'pswpin', 'workingset_refault_file']) {
      expect([key, parsed.get(key)]).toEqual([key, 0n]);
    }
  });

  it('keeps an unknown key from a newer kernel, at 0', () => {
    const newer = parseVmstat('nr_free_pages 10\nnr_something_new 77\npgfault 5\n');
    const text = renderVmstat({ host: newer, memory: memory(), pageSizeBytes: PAGE, hostMemTotalKb: HOST_MEM_TOTAL_KB });
    expect(text).toBe(`nr_free_pages ${(512n * MIB - 327155712n) / PAGE}\nnr_something_new 0\npgfault 987654\n`);
  });
});
