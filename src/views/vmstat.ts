// /proc/vmstat for a container: the host's keys in the host's order, with the container's own
// numbers where its memcg counts them and 0 where only the host does (a host counter here would
// be other tenants' activity). Every key's source: docs/views.md#vmstat.
import type { MemorySnapshot } from '../cgroup/snapshot';
import type { HostVmstat } from '../host/snapshot';
import { atLeastZero } from '../cgroup/bigints';
import { containerMemFreeBytes, containerMemTotalBytes } from './memoryMath';

/** Bytes the container's cgroup has read from / written to block devices (blkio / io). */
export interface BlockIoBytes {
  readBytes: bigint;
  writeBytes: bigint;
}

/** The kernel applies the dirty ratios to a memcg's own memory: scale the host's thresholds by
 *  the container's share of RAM. */
const SCALED_BY_MEMORY_SHARE: ReadonlySet<string> = new Set([
  'nr_dirty_threshold',
  'nr_dirty_background_threshold',
]);

export interface VmstatInput {
  host: HostVmstat;
  memory: MemorySnapshot;
  /** The host's page size (4096 on x86-64), the unit of the nr_* gauges. */
  pageSizeBytes: bigint;
  /** The host's MemTotal, for nr_free_pages exactly as meminfo's MemFree. */
  hostMemTotalKb: bigint;
  /** The container's block I/O (the same counts as its /proc/diskstats), for pgpgin/pgpgout;
   *  null or absent = unknown (both 0). */
  blockIo?: BlockIoBytes | null;
}

export function renderVmstat(input: VmstatInput): string {
  const { host, memory, pageSizeBytes, hostMemTotalKb } = input;
  const blockIo = input.blockIo ?? null;
  const gauges = memoryGauges(memory, pageSizeBytes, hostMemTotalKb);
  const memoryShare: MemoryShare = {
    memTotalBytes: containerMemTotalBytes(hostMemTotalKb, memory),
    hostMemTotalBytes: hostMemTotalKb * 1024n,
  };
  const events = memory.stat.events;

  let out = '';
  for (const [key, hostValue] of host.entries) {
    // The first source that knows the key; 0 where the memcg has no such counter.
    const value =
      gauges.get(key) ??
      blockIoValue(key, blockIo) ??
      scaledThreshold(key, hostValue, memoryShare) ??
      events.get(key) ??
      0n;
    out += `${key} ${atLeastZero(value)}\n`;
  }
  return out;
}

/** pgpgin / pgpgout: KiB read from / written to block devices (0 when unknown); undefined for
 *  other keys. Never v1 memory.stat's pgpgin: it counts pages charged. */
function blockIoValue(key: string, blockIo: BlockIoBytes | null): bigint | undefined {
  if (key === 'pgpgin') return blockIo === null ? 0n : blockIo.readBytes / 1024n;
  if (key === 'pgpgout') return blockIo === null ? 0n : blockIo.writeBytes / 1024n;
  return undefined;
}

interface MemoryShare {
  memTotalBytes: bigint;
  hostMemTotalBytes: bigint;
}

/** A dirty threshold scaled by the container's share of RAM; undefined for other keys. */
function scaledThreshold(key: string, hostValue: bigint, share: MemoryShare): bigint | undefined {
  if (!SCALED_BY_MEMORY_SHARE.has(key)) return undefined;
  // No host RAM figure to scale by (never on a real host): keep the host's threshold.
  if (share.hostMemTotalBytes <= 0n) return hostValue;
  return (hostValue * share.memTotalBytes) / share.hostMemTotalBytes;
}

/** The memcg's gauges in pages, by vmstat name. */
function memoryGauges(
  memory: MemorySnapshot,
  pageSizeBytes: bigint,
  hostMemTotalKb: bigint,
): Map<string, bigint> {
  const s = memory.stat;
  const pages = (bytes: bigint) => bytes / pageSizeBytes;
  // HPAGE_PMD_SIZE: a PMD maps a page-table page of 8-byte entries (2 MiB with 4 KiB pages).
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
    // One zone: the nr_zone_* gauges repeat the node's, so that they sum to nr_* as on a host.
    ['nr_zone_inactive_anon', inactiveAnon],
    ['nr_zone_active_anon', activeAnon],
    ['nr_zone_inactive_file', inactiveFile],
    ['nr_zone_active_file', activeFile],
    ['nr_zone_unevictable', unevictable],
    ['nr_zone_write_pending', dirty + writeback], // the kernel's definition
    ['nr_inactive_anon', inactiveAnon],
    ['nr_active_anon', activeAnon],
    ['nr_inactive_file', inactiveFile],
    ['nr_active_file', activeFile],
    ['nr_unevictable', unevictable],
    ['nr_slab_reclaimable', pages(s.slabReclaimableBytes)],
    ['nr_slab_unreclaimable', pages(s.slabUnreclaimableBytes)],
    ['nr_anon_pages', pages(s.anonBytes)],
    ['nr_mapped', pages(s.fileMappedBytes)],
    // memcg "file" is its NR_FILE_PAGES (shmem included; swap cache is charged only as swapcached).
    ['nr_file_pages', pages(s.fileBytes)],
    ['nr_dirty', dirty],
    ['nr_writeback', writeback],
    ['nr_shmem', pages(s.shmemBytes)],
    ['nr_anon_transparent_hugepages', s.anonHugeBytes / pmdHugePageBytes],
    ['nr_kernel_stack', s.kernelStackBytes / 1024n], // the kernel prints it in kB
    ['nr_page_table_pages', pages(s.pageTablesBytes)],
    ['nr_swapcached', pages(s.swapCachedBytes)],
  ]);
}
