/**
 * The table of virtual files: for each served path, the host file it stands for and the view
 * that renders it from snapshots. A new file is one view module and one line in VIEWS.
 *
 * `ViewInputs` reads each snapshot at most once per request, and only the ones a view asks for:
 * /proc/meminfo never reads cpuacct, /proc/cpuinfo never reads memory.stat.
 */
import path from 'node:path';
import type { ViewPath } from './fuse/layout';
import type { CgroupLocation, CpuLimits, CpuUsage, MemorySnapshot, TaskCounts } from './cgroup/snapshot';
import { readBlockIo, readCpuLimits, readCpuUsage, readMemory, readTaskCounts } from './cgroup/read';
import { readOldestProcess, type OldestProcess } from './cgroup/tasks';
import { taskStatFilesOf, type ContainerRecord } from './containers/registry';
import type { CpuinfoBlock, HostLoadavg, HostMeminfo, HostStat } from './host/snapshot';
import { parseMeminfo } from './host/meminfo';
import { parseStat } from './host/stat';
import { parseCpuOnline } from './host/cpuOnline';
import { parseVmstat } from './host/vmstat';
import { parseLoadavg } from './host/loadavg';
import { parseUptime } from './host/uptime';
import { readBoundedText } from './host/boundedRead';
import { renderMeminfo } from './views/meminfo';
import { renderCpuinfo } from './views/cpuinfo';
import { renderCpuOnline } from './views/cpuOnline';
import { renderStat } from './views/stat';
import { renderVmstat } from './views/vmstat';
import { renderLoadavg } from './views/loadavg';
import { renderUptime } from './views/uptime';
import { renderSwaps } from './views/swaps';
import { advanceDiskHistory, blockIoTotals, renderDiskstats, shownDevices, type DiskHistory } from './views/diskstats';
import { renderPartitions } from './views/partitions';
import { parseDiskstats, type HostDiskstats } from './host/diskstats';
import { parsePartitions } from './host/partitions';
import { visibleCpus } from './views/visibleCpus';
import type { LoadavgSampler } from './loadavg/sampler';

/** Where the host's files are, and the host-wide helpers the views share. */
export interface HostSources {
  procRoot: string;
  sysRoot: string;
  /** USER_HZ: the unit of /proc/stat and of /proc/<pid>/stat start times (100 on Linux). */
  userHz: number;
  pageSizeBytes: bigint;
  /** Upper bound of threads counted per cgroup per read (procs_running, loadavg). */
  maxTasksPerRead: number;
  sampler: LoadavgSampler;
  cpuinfoCache: TimedCache<CpuinfoBlock[]>;
  /**
   * The host's /proc/meminfo and /proc/stat, parsed, shared by every container's render for a
   * few ms (absent: read per render). A node of 500 containers each read once a second renders
   * ~1,500 times a second, and each render would read the same host file again.
   */
  hostMeminfoCache?: TimedCache<HostMeminfo>;
  hostStatCache?: TimedCache<HostStat>;
  /** The same for /proc/loadavg (every loadavg render) and the online CPUs (every CPU view). */
  hostLoadavgCache?: TimedCache<HostLoadavg>;
  hostOnlineCache?: TimedCache<number[]>;
}

/**
 * How long a container's task count is reused. Counting reads one /proc/<tid>/stat per thread:
 * at thousands of /proc/stat reads per second (or thousands of threads) recounting on every read
 * would dominate the cost of the file, and a procs_running up to a second old is as good as the
 * kernel's own, which changes between any two reads anyway.
 */
export const TASK_COUNTS_TTL_MS = 1000;

/** The container's task count if one was made in the last `maxAgeMs` (by a render or the load sampler). */
export function recentTaskCounts(container: ContainerRecord, nowMs: number, maxAgeMs = TASK_COUNTS_TTL_MS): TaskCounts | null {
  const cached = container.taskCounts;
  return cached !== null && nowMs >= cached.atMs && nowMs - cached.atMs < maxAgeMs ? cached.counts : null;
}

/** Counts the container's tasks now (its kept task files) and keeps the count in its record. */
export function countTasksNow(container: ContainerRecord, sources: Pick<HostSources, 'procRoot' | 'maxTasksPerRead'>, nowMs: number): TaskCounts {
  const counts = readTaskCounts(container.location, sources.procRoot, sources.maxTasksPerRead, taskStatFilesOf(container));
  container.taskCounts = { atMs: nowMs, counts };
  return counts;
}

/** A value recomputed at most once per `ttlMs`. */
export class TimedCache<T> {
  private value: T | null = null;
  private expiresAtMs = 0;
  constructor(private readonly ttlMs: number, private readonly load: () => T) {}
  get(nowMs: number): T {
    if (this.value === null || nowMs >= this.expiresAtMs) {
      this.value = this.load();
      this.expiresAtMs = nowMs + this.ttlMs;
    }
    return this.value;
  }
}

const HOST_FILES: Record<ViewPath, { root: 'proc' | 'sys'; rel: string }> = {
  '/proc/cpuinfo': { root: 'proc', rel: 'cpuinfo' },
  '/proc/meminfo': { root: 'proc', rel: 'meminfo' },
  '/proc/stat': { root: 'proc', rel: 'stat' },
  '/proc/vmstat': { root: 'proc', rel: 'vmstat' },
  '/proc/loadavg': { root: 'proc', rel: 'loadavg' },
  '/proc/uptime': { root: 'proc', rel: 'uptime' },
  '/proc/swaps': { root: 'proc', rel: 'swaps' },
  '/proc/diskstats': { root: 'proc', rel: 'diskstats' },
  '/proc/partitions': { root: 'proc', rel: 'partitions' },
  '/sys/devices/system/cpu/online': { root: 'sys', rel: 'devices/system/cpu/online' },
};

export function hostPathOf(file: ViewPath, sources: Pick<HostSources, 'procRoot' | 'sysRoot'>): string {
  const entry = HOST_FILES[file];
  return path.join(entry.root === 'proc' ? sources.procRoot : sources.sysRoot, entry.rel);
}

/** Lazily read, memoised inputs of one request. */
export class ViewInputs {
  private readonly memo = new Map<string, unknown>();
  readonly location: CgroupLocation;

  constructor(
    readonly container: ContainerRecord,
    readonly sources: HostSources,
    readonly nowMs: number,
  ) {
    this.location = container.location;
  }

  private once<T>(name: string, load: () => T): T {
    if (this.memo.has(name)) return this.memo.get(name) as T;
    const value = load();
    this.memo.set(name, value);
    return value;
  }

  hostText(file: ViewPath): string {
    return this.once(`text:${file}`, () => {
      const hostPath = hostPathOf(file, this.sources);
      return readBoundedText(path.dirname(hostPath), path.basename(hostPath));
    });
  }
  hostMeminfo(): HostMeminfo {
    return this.once('meminfo', () => this.sources.hostMeminfoCache?.get(this.nowMs) ?? parseMeminfo(this.hostText('/proc/meminfo')));
  }
  hostStat(): HostStat {
    return this.once('stat', () => this.sources.hostStatCache?.get(this.nowMs) ?? parseStat(this.hostText('/proc/stat')));
  }
  hostCpuinfo(): CpuinfoBlock[] {
    return this.sources.cpuinfoCache.get(this.nowMs);
  }
  hostOnlineCpus(): number[] {
    return this.once('online', () => this.sources.hostOnlineCache?.get(this.nowMs) ?? parseCpuOnline(this.hostText('/sys/devices/system/cpu/online')));
  }
  hostLoadavg(): HostLoadavg {
    return this.sources.hostLoadavgCache?.get(this.nowMs) ?? parseLoadavg(this.hostText('/proc/loadavg'));
  }
  memory(): MemorySnapshot | null {
    return this.once('memory', () => readMemory(this.location));
  }
  cpuLimits(): CpuLimits {
    return this.once('cpuLimits', () => readCpuLimits(this.location));
  }
  cpuUsage(): CpuUsage | null {
    return this.once('cpuUsage', () => readCpuUsage(this.location));
  }
  tasks(): TaskCounts {
    return this.once('tasks', () => recentTaskCounts(this.container, this.nowMs) ?? countTasksNow(this.container, this.sources, this.nowMs));
  }
  /** The container's first process: where its uptime starts. */
  oldestProcess(): OldestProcess | null {
    return this.once('oldest', () => readOldestProcess(this.location, this.sources.procRoot));
  }
  hostDiskstats(): HostDiskstats {
    return this.once('diskstats', () => parseDiskstats(this.hostText('/proc/diskstats'), this.sources.procRoot));
  }
  /** The container's block I/O per disk, advanced in its record (never backwards); null when its
   *  cgroup has no blkio / io accounting. */
  diskHistory(): DiskHistory | null {
    return this.once('disk', () => {
      const io = readBlockIo(this.location);
      if (io === null) return null;
      this.container.diskHistory = advanceDiskHistory(this.container.diskHistory, io, this.hostDiskstats());
      return this.container.diskHistory;
    });
  }
  /** Host CPU ids the container sees, ascending: the numbering every CPU view shares. */
  visibleCpus(): number[] {
    return this.once('visible', () => visibleCpus(this.hostOnlineCpus(), this.cpuLimits()));
  }
}

type ViewRenderer = (inputs: ViewInputs) => string;

const VIEWS: Record<ViewPath, ViewRenderer> = {
  '/proc/meminfo': (r) => {
    const memory = r.memory();
    return memory ? renderMeminfo(r.hostMeminfo(), memory) : r.hostText('/proc/meminfo');
  },
  '/proc/cpuinfo': (r) => renderCpuinfo(r.hostCpuinfo(), r.visibleCpus()),
  '/sys/devices/system/cpu/online': (r) => renderCpuOnline(r.visibleCpus().length),
  '/proc/stat': (r) => {
    const { text, history } = renderStat({
      host: r.hostStat(),
      visible: r.visibleCpus(),
      usage: r.cpuUsage(),
      tasks: r.tasks(),
      userHz: r.sources.userHz,
      previous: r.container.statHistory,
    });
    r.container.statHistory = history;
    return text;
  },
  '/proc/vmstat': (r) => {
    const memory = r.memory();
    if (memory === null) return r.hostText('/proc/vmstat');
    const disks = r.diskHistory();
    return renderVmstat({
      host: parseVmstat(r.hostText('/proc/vmstat')), memory, pageSizeBytes: r.sources.pageSizeBytes,
      hostMemTotalKb: r.hostMeminfo().get('MemTotal') ?? 0n, blockIo: disks === null ? null : blockIoTotals(disks),
    });
  },
  '/proc/loadavg': (r) => renderLoadavg(r.sources.sampler.get(r.container), r.hostLoadavg()),
  '/proc/uptime': (r) => {
    const host = parseUptime(r.hostText('/proc/uptime'));
    const usage = r.cpuUsage();
    return renderUptime({
      hostUptimeSec: host.uptimeSec,
      hostIdleSec: host.idleSec,
      containerStartTicks: r.oldestProcess()?.startTicks ?? null,
      userHz: r.sources.userHz,
      cpuUsageNs: usage === null ? null : usage.userNs + usage.systemNs,
      visibleCpuCount: r.visibleCpus().length,
      hostCpuCount: r.hostOnlineCpus().length,
    });
  },
  '/proc/swaps': (r) => {
    const memory = r.memory();
    const swapTotalKb = r.hostMeminfo().get('SwapTotal') ?? 0n;
    return memory ? renderSwaps(r.hostText('/proc/swaps'), memory, swapTotalKb) : r.hostText('/proc/swaps');
  },
  // No blkio / io accounting for the cgroup: the host's files, as meminfo without a memory cgroup.
  '/proc/diskstats': (r) => {
    const disks = r.diskHistory();
    return disks === null ? r.hostText('/proc/diskstats') : renderDiskstats(disks, r.hostDiskstats());
  },
  '/proc/partitions': (r) => {
    const disks = r.diskHistory();
    const host = r.hostText('/proc/partitions');
    return disks === null ? host : renderPartitions(parsePartitions(host, r.sources.procRoot), shownDevices(disks));
  },
};

/** Renders `file` for `container` (at its record's location). Throws on unreadable/malformed input. */
export function renderView(file: ViewPath, container: ContainerRecord, sources: HostSources, nowMs: number): string {
  return VIEWS[file](new ViewInputs(container, sources, nowMs));
}
