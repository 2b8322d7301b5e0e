/**
 * ViewInputs on fixture trees (no root): a request reads each snapshot at most once and only
 * the ones its view asks for, and task counts are reused for TASK_COUNTS_TTL_MS.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { TASK_COUNTS_TTL_MS, TimedCache, type HostSources } from '../../src/files';
import { VIEW_PATHS, type ViewPath } from '../../src/fuse/layout';
import { ContainerRegistry, type ContainerRecord } from '../../src/containers/registry';
import { LoadavgSampler } from '../../src/loadavg/sampler';
import { parseCpuinfo } from '../../src/host/cpuinfo';
import { FIXTURES, v2Location } from '../cgroup/helpers';

vi.mock('../../src/cgroup/read', async (importActual) => spiedModule(await importActual<object>()));
vi.mock('../../src/host/boundedRead', async (importActual) => spiedModule(await importActual<object>()));
vi.mock('../../src/cgroup/tasks', async (importActual) => spiedModule(await importActual<object>()));

/** The module with each function wrapped in a spy that calls the real one. */
function spiedModule(actual: object): object {
  return Object.fromEntries(Object.entries(actual).map(([name, value]) => [name, typeof value === 'function' && !/^[A-Z]/.test(name) ? vi.fn(value) : value]));
}

type Snapshot = 'memory' | 'cpuLimits' | 'cpuUsage' | 'tasks' | 'oldestProcess' | 'blockIo';
type Reader = (...args: never[]) => unknown;

/** The cgroup snapshots each view needs (loadavg's count is the sampler's, not the request's). */
const ASKED_FOR: Record<ViewPath, Snapshot[]> = {
  '/proc/meminfo': ['memory'],
  '/proc/cpuinfo': ['cpuLimits'],
  '/sys/devices/system/cpu/online': ['cpuLimits'],
  '/proc/stat': ['cpuLimits', 'cpuUsage', 'tasks'],
  '/proc/vmstat': ['memory', 'blockIo'],
  '/proc/loadavg': [],
  '/proc/uptime': ['cpuLimits', 'cpuUsage', 'oldestProcess'],
  '/proc/swaps': ['memory'],
  '/proc/diskstats': ['blockIo'],
  '/proc/partitions': ['blockIo'],
};

describe('ViewInputs', () => {
  let dir: string;
  let sources: HostSources;
  let registry: ContainerRegistry;
  let container: ContainerRecord;
  let renderView: typeof import('../../src/files').renderView;
  let readBoundedText: Reader;
  let snapshotReaders: Record<Snapshot, Reader>;

  beforeAll(async () => {
    // The unit lane shares a worker between files (isolate: false): src/files may already be
    // loaded there with the real readers. Load it afresh, so it calls the spied modules above.
    vi.resetModules();
    const read = await import('../../src/cgroup/read.js');
    const tasks = await import('../../src/cgroup/tasks.js');
    ({ readBoundedText } = await import('../../src/host/boundedRead.js'));
    ({ renderView } = await import('../../src/files.js'));
    snapshotReaders = {
      memory: read.readMemory,
      cpuLimits: read.readCpuLimits,
      cpuUsage: read.readCpuUsage,
      tasks: read.readTaskCounts,
      oldestProcess: tasks.readOldestProcess,
      blockIo: read.readBlockIo,
    };
    // One /proc for the host's files and the container's processes, as on a node.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-inputs-'));
    const procRoot = path.join(dir, 'proc');
    fs.cpSync(path.join(__dirname, '../fixtures/proc'), procRoot, { recursive: true });
    fs.cpSync(path.join(FIXTURES, 'proc'), procRoot, { recursive: true });
    fs.writeFileSync(path.join(procRoot, 'diskstats'), '   8       0 sda 1 0 8 0 0 0 0 0 0 0 0\n');
    fs.writeFileSync(path.join(procRoot, 'partitions'), 'major minor  #blocks  name\n\n   8        0  268435456 sda\n');
    const sysRoot = path.join(dir, 'sys');
    fs.mkdirSync(path.join(sysRoot, 'devices/system/cpu'), { recursive: true });
    fs.writeFileSync(path.join(sysRoot, 'devices/system/cpu/online'), '0-7\n');
    const sampler = new LoadavgSampler({ containers: () => registry.all(), countTasks: () => ({ running: 1, blocked: 0, total: 3, truncated: false }) });
    sources = {
      procRoot, sysRoot, userHz: 100, pageSizeBytes: 4096n, maxTasksPerRead: 1000, sampler,
      cpuinfoCache: new TimedCache(1000, () => parseCpuinfo(fs.readFileSync(path.join(procRoot, 'cpuinfo'), 'utf8'))),
    };
  });
  beforeEach(() => {
    registry = new ContainerRegistry({ idleMs: 60_000 });
    container = registry.use(v2Location('/kubepods.slice/pod-a.slice/container-a.scope'), 0);
    vi.clearAllMocks();
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const calls = (): Record<Snapshot, number> =>
    Object.fromEntries(Object.entries(snapshotReaders).map(([name, fn]) => [name, vi.mocked(fn).mock.calls.length])) as Record<Snapshot, number>;

  it.each(VIEW_PATHS.map((file) => [file, ASKED_FOR[file]] as const))('%s reads exactly the snapshots %j, once each', (file, wanted) => {
    expect(renderView(file, container, sources, 1_000_000).length).toBeGreaterThan(0);
    const expected = Object.fromEntries(Object.keys(snapshotReaders).map((name) => [name, wanted.includes(name as Snapshot) ? 1 : 0]));
    expect(calls()).toEqual(expected);
  });

  it.each([...VIEW_PATHS])("%s reads each of the host's files at most once", (file) => {
    renderView(file, container, sources, 1_000_000);
    const paths = vi.mocked(readBoundedText).mock.calls.map(([hostDir, name]) => path.join(hostDir, name));
    expect(paths.length).toBeGreaterThan(0);
    expect(new Set(paths).size).toBe(paths.length);
  });

  it('reads the snapshots afresh for the next request', () => {
    renderView('/proc/meminfo', container, sources, 1_000_000);
    renderView('/proc/meminfo', container, sources, 1_000_001);
    expect(calls().memory).toBe(2);
  });

  it('reuses a task count for TASK_COUNTS_TTL_MS, then counts again', () => {
    const t0 = 5_000_000;
    renderView('/proc/stat', container, sources, t0);
    renderView('/proc/stat', container, sources, t0 + TASK_COUNTS_TTL_MS - 1);
    expect(calls().tasks).toBe(1);
    renderView('/proc/stat', container, sources, t0 + TASK_COUNTS_TTL_MS);
    expect(calls().tasks).toBe(2);
    // A clock that went backwards does not keep a count from the future.
    renderView('/proc/stat', container, sources, t0);
    expect(calls().tasks).toBe(3);
  });

  it("keeps /proc/stat's history on the container's record", () => {
    expect(container.statHistory).toBeNull();
    renderView('/proc/stat', container, sources, 1_000_000);
    expect(container.statHistory).not.toBeNull();
  });
});
