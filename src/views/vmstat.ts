/**
 * /proc/vmstat for a container: every key of the host's file, in the host's order and format
 * ("name value\n"), with the container's own numbers where its cgroup accounts them.
 *
 * Where each value comes from, in the order the renderer tries them:
 *
 * 1. Memory gauges, from the cgroup's memory.stat / usage (pages unless noted):
 *    nr_free_pages = MemFree / page, as in meminfo (memoryMath.ts: ancestors' headroom too);
 *    nr_{inactive,active}_{anon,file}, nr_unevictable, nr_anon_pages, nr_file_pages, nr_mapped,
 *    nr_shmem, nr_dirty, nr_writeback, nr_slab_{reclaimable,unreclaimable} (v2 only; v1 has
 *    none: 0), nr_page_table_pages, nr_swapcached; nr_kernel_stack in kB (the kernel prints
 *    NR_KERNEL_STACK_KB); nr_anon_transparent_hugepages in PMD-sized huge pages (the kernel
 *    divides by HPAGE_PMD_NR). The per-zone LRU gauges nr_zone_* repeat the node values, as
 *    if the container's memory were one zone, so that sum(nr_zone_x) = nr_x as on the host;
 *    nr_zone_write_pending = nr_dirty + nr_writeback, as the kernel defines it.
 * 2. pgpgin / pgpgout: the kernel counts KiB submitted to block devices (sectors / 2). The
 *    container's equivalent is its io controller's bytes read / written (v2 io.stat
 *    rbytes/wbytes, v1 blkio io_service_bytes) / 1024, passed in as `blockIo`; without it, 0.
 *    v1's memory.stat pgpgin/pgpgout are NOT used even when present: they count pages charged
 *    to / uncharged from the memcg (every anonymous fault is a "pgpgin"), so procps vmstat's
 *    bi/bo would show memory allocation as disk input. v2 has no such counter at all.
 * 3. nr_dirty_threshold / nr_dirty_background_threshold: the host's thresholds scaled by the
 *    container's share of RAM (MemTotal / host MemTotal). The kernel applies the same dirty
 *    ratios to a memcg's own dirtyable memory, so the container's limit is roughly its share;
 *    the host's figure would exceed the container's whole memory.
 * 4. Event counters the memcg keeps, from memory.stat via MemorySnapshot.stat.events (keyed by
 *    the vmstat name): pgfault, pgmajfault, workingset_*, pgrefill, pgscan_{kswapd,direct,
 *    khugepaged,proactive}, pgsteal_*, pgactivate, pgdeactivate, pglazyfree, pglazyfreed,
 *    pswpin/pswpout (v2, recent kernels only), zswpin/zswpout/zswpwb, thp_fault_alloc,
 *    thp_collapse_alloc, thp_swpout*, numa_pages_migrated, numa_pte_updates, numa_hint_faults,
 *    pgdemote_*, pgpromote_success, ... whatever the running kernel's memcg exposes.
 * 5. Everything else is 0. These are host-wide: the memcg has no such counter, so no
 *    per-container figure exists.
 *      - NUMA placement: numa_hit, numa_miss, numa_foreign, numa_interleave, numa_local,
 *        numa_other (per node, not per memcg).
 *      - Page allocator and zones: nr_free_pages_blocks, nr_free_cma, nr_zspages, nr_mlock,
 *        nr_isolated_*, pgalloc_*, pgfree, pgskip_*, allocstall_*, nr_memmap_*,
 *        nr_iommu_pages, nr_balloon_pages, nr_kernel_misc_reclaimable, nr_kernel_file_pages,
 *        nr_sec_page_table_pages, nr_hugetlb, the THP size gauges nr_{file,shmem}_hugepages
 *        and nr_{file,shmem}_pmdmapped (not in the snapshot), workingset_nodes.
 *      - Compaction and migration: compact_*, pgmigrate_*, thp_migration_*.
 *      - Global reclaim machinery: kswapd_*, pageoutrun, slabs_scanned, pginodesteal,
 *        kswapd_inodesteal, drop_pagecache, drop_slab, zone_reclaim_*, nr_vmscan_write,
 *        nr_vmscan_immediate_reclaim, pgrotated, pgscan_direct_throttle, pgreuse, and
 *        pgscan_{anon,file} / pgsteal_{anon,file} (the memcg splits by reclaimer, not type).
 *      - Writeback: nr_dirtied, nr_written, nr_throttled_written; pins: nr_foll_pin_*.
 *      - unevictable_pgs_*, htlb_buddy_*, balloon_*, direct_map_*, swap_ra*, swpin_zero,
 *        swpout_zero, ksm_*, cow_ksm, the THP events the memcg does not count, oom_kill
 *        (v2 keeps it in memory.events, which the snapshot does not carry), nr_unstable.
 *      - Any key a newer kernel adds, until someone decides otherwise.
 *    Zero rather than the host's value: a number in the container's /proc/vmstat is read as
 *    the container's own, so a host counter there would be other tenants' activity (a leak,
 *    and rates that move while the container is idle). 0 is what the kernel itself prints for
 *    an event that never happened, and rate-based monitoring reads it as "none".
 *    procps `vmstat` reads only pgpgin/pgpgout/pswpin/pswpout (bi/bo/si/so) from this file;
 *    those are per container (2. and 4.) or 0 where the kernel gives no per-cgroup figure.
 *
 * No value passes through from the host unchanged, and none is negative.
 */
import type { MemorySnapshot } from '../cgroup/snapshot';
import type { HostVmstat } from '../host/snapshot';
import { containerMemFreeBytes, containerMemTotalBytes } from './memoryMath';

/** Bytes the container's io controller has read from / written to block devices. */
export interface BlockIoBytes {
  readBytes: bigint;
  writeBytes: bigint;
}

/** Host thresholds that are scaled to the container's share of RAM (see 3. above). */
const SCALED_BY_MEMORY_SHARE: ReadonlySet<string> = new Set([
  'nr_dirty_threshold',
  'nr_dirty_background_threshold',
]);

/**
 * @param pageSizeBytes the host's page size (4096 on x86-64), the unit of the nr_* gauges
 * @param hostMemTotalKb the host's MemTotal, for MemTotal/nr_free_pages exactly as meminfo
 * @param blockIo the container's block I/O, for pgpgin/pgpgout; null = unknown (both 0)
 */
export function renderVmstat(
  host: HostVmstat,
  memory: MemorySnapshot,
  pageSizeBytes: bigint,
  hostMemTotalKb: bigint,
  blockIo: BlockIoBytes | null = null,
): string {
  const gauges = memoryGauges(memory, pageSizeBytes, hostMemTotalKb);
  const memTotalBytes = containerMemTotalBytes(hostMemTotalKb, memory);
  const hostMemTotalBytes = hostMemTotalKb * 1024n;
  const events = memory.stat.events;

  let out = '';
  for (const [key, hostValue] of host.entries) {
    let value: bigint;
    const gauge = gauges.get(key);
    if (gauge !== undefined) {
      value = gauge;
    } else if (key === 'pgpgin') {
      // Never memory.stat's pgpgin: same name, different meaning (see 2. above).
      value = blockIo === null ? 0n : blockIo.readBytes / 1024n;
    } else if (key === 'pgpgout') {
      value = blockIo === null ? 0n : blockIo.writeBytes / 1024n;
    } else if (SCALED_BY_MEMORY_SHARE.has(key)) {
      // No host RAM figure to scale by (never on a real host): keep the host's threshold.
      value = hostMemTotalBytes > 0n ? (hostValue * memTotalBytes) / hostMemTotalBytes : hostValue;
    } else {
      value = events.get(key) ?? 0n;
    }
    out += `${key} ${value > 0n ? value : 0n}\n`;
  }
  return out;
}

/** The gauges of step 1, by vmstat name. */
function memoryGauges(
  memory: MemorySnapshot,
  pageSizeBytes: bigint,
  hostMemTotalKb: bigint,
): Map<string, bigint> {
  const s = memory.stat;
  const pages = (bytes: bigint) => bytes / pageSizeBytes;
  // A PMD maps one page-table page of entries: page size / 8 bytes per entry (64-bit), so
  // 2 MiB with 4 KiB pages, 512 MiB with 64 KiB pages: the kernel's HPAGE_PMD_SIZE.
  const pmdHugePageBytes = pageSizeBytes * (pageSizeBytes / 8n);

  const inactiveAnon = pages(s.inactiveAnonBytes);
  const activeAnon = pages(s.activeAnonBytes);
  const inactiveFile = pages(s.inactiveFileBytes);
  const activeFile = pages(s.activeFileBytes);
  const unevictable = pages(s.unevictableBytes);
  const dirty = pages(s.fileDirtyBytes);
  const writeback = pages(s.fileWritebackBytes);

  return new Map<string, bigint>([
    ['nr_free_pages', pages(containerMemFreeBytes(hostMemTotalKb, memory))],
    ['nr_zone_inactive_anon', inactiveAnon],
    ['nr_zone_active_anon', activeAnon],
    ['nr_zone_inactive_file', inactiveFile],
    ['nr_zone_active_file', activeFile],
    ['nr_zone_unevictable', unevictable],
    ['nr_zone_write_pending', dirty + writeback],
    ['nr_inactive_anon', inactiveAnon],
    ['nr_active_anon', activeAnon],
    ['nr_inactive_file', inactiveFile],
    ['nr_active_file', activeFile],
    ['nr_unevictable', unevictable],
    ['nr_slab_reclaimable', pages(s.slabReclaimableBytes)],
    ['nr_slab_unreclaimable', pages(s.slabUnreclaimableBytes)],
    ['nr_anon_pages', pages(s.anonBytes)],
    ['nr_mapped', pages(s.fileMappedBytes)],
    // memcg "file" is the same NR_FILE_PAGES counter (shmem and swap cache included).
    ['nr_file_pages', pages(s.fileBytes)],
    ['nr_dirty', dirty],
    ['nr_writeback', writeback],
    ['nr_shmem', pages(s.shmemBytes)],
    ['nr_anon_transparent_hugepages', s.anonHugeBytes / pmdHugePageBytes],
    ['nr_kernel_stack', s.kernelStackBytes / 1024n],
    ['nr_page_table_pages', pages(s.pageTablesBytes)],
    ['nr_swapcached', pages(s.swapCachedBytes)],
  ]);
}
