// The driver: reads a located cgroup into the normalised snapshots, choosing the v1 or v2 reader
// per controller, so views never learn the version. Errors are CgroupParseErrors naming the file.
import type { BlockIoSnapshot, CgroupLocation, Controller, CpuLimits, CpuUsage, MemorySnapshot, TaskCounts } from './snapshot';
import { controllerVersion, v1ControllerDir } from './hierarchy';
import { readV1Memory } from './v1/memory';
import { readV2Memory } from './v2/memory';
import { readV1CpuTimeMark, readV1CpuUsage, readV1CpusetCpus, readV1QuotaCpus } from './v1/cpu';
import { readV2CpuTimeMark, readV2CpuUsage, readV2CpusetCpus, readV2QuotaCpus } from './v2/cpu';
import { readOptionalFile } from './parse';
import { readTreeTaskCounts } from './tasks';
import type { TaskStatFiles } from '../host/taskStatFiles';
import { readV1BlockIo } from './v1/blkio';
import { readV2BlockIo } from './v2/io';

type ControllerReader<T> = (dir: string, root: string) => T;

/** The v1 or v2 reader's result for `controller`; null when the cgroup has no such controller. */
function readController<T>(loc: CgroupLocation, controller: Controller, v1: ControllerReader<T>, v2: ControllerReader<T>): T | null {
  const dir = loc.dirs[controller];
  const root = loc.roots[controller];
  if (dir === undefined || root === undefined) return null;
  return controllerVersion(loc, controller) === 2 ? v2(dir, root) : v1(dir, root);
}

/** The cgroup's memory; null when it has no memory controller (the host's view applies). */
export function readMemory(loc: CgroupLocation): MemorySnapshot | null {
  return readController(loc, 'memory', readV1Memory, readV2Memory);
}

/** cpuset and CFS quota; each part null when its controller or file is absent. */
export function readCpuLimits(loc: CgroupLocation): CpuLimits {
  const cpusetCpus = readController(
    loc,
    'cpuset',
    (dir) => readV1CpusetCpus(dir, loc.cpuCountLimit),
    (dir, root) => readV2CpusetCpus(dir, root, loc.cpuCountLimit),
  );
  const quotaCpus = readController(loc, 'cpu', readV1QuotaCpus, readV2QuotaCpus);
  return { cpusetCpus, quotaCpus };
}

/**
 * CPU time used by the cgroup: v1 cpuacct when the caller has one (it has the per-CPU split);
 * else, on v2, cpu.stat of its unified cgroup (present in every v2 cgroup). null otherwise: in a
 * hybrid layout the unified hierarchy is systemd's process tracking, not the container's cgroup.
 */
export function readCpuUsage(loc: CgroupLocation): CpuUsage | null {
  const cpuacctDir = v1ControllerDir(loc, 'cpuacct');
  if (cpuacctDir !== null) return readV1CpuUsage(cpuacctDir, loc.cpuCountLimit);
  if (loc.version === 2 && loc.unifiedDir !== null) return readV2CpuUsage(loc.unifiedDir);
  return null;
}

/** Thread states and process count of the cgroup and its child cgroups (tasks.ts). */
export function readTaskCounts(loc: CgroupLocation, procRoot: string, maxTasks: number, statFiles?: TaskStatFiles): TaskCounts {
  return readTreeTaskCounts(loc, procRoot, maxTasks, statFiles);
}

/**
 * A mark of everything that changes the cgroup's task counts: its CPU time (a task that runs,
 * forks, exits, sleeps or wakes itself moves it) and its task count (pids.current: tasks moved
 * in or out), both hierarchical, as read (two kept-fd reads, ~4 µs, against ~70 µs for a
 * count). The same mark twice: no task of it ran and none came or went in between, so its
 * thread states are what they were. Null when either part is missing (no cpuacct/cpu.stat, no
 * pids controller): the caller then counts every time.
 */
export function readActivityMark(loc: CgroupLocation): string | null {
  const cpuacctDir = v1ControllerDir(loc, 'cpuacct');
  let cpu: string | null = null;
  if (cpuacctDir !== null) cpu = readV1CpuTimeMark(cpuacctDir);
  else if (loc.version === 2 && loc.unifiedDir !== null) cpu = readV2CpuTimeMark(loc.unifiedDir);
  const pidsDir = loc.dirs.pids;
  if (cpu === null || pidsDir === undefined) return null;
  const tasks = readOptionalFile(pidsDir, 'pids.current');
  return tasks === null ? null : `${cpu}|${tasks}`;
}

/** Block I/O per device: v1 blkio, else v2 io (io.stat); null when the cgroup has neither (or
 *  the files are absent). */
export function readBlockIo(loc: CgroupLocation): BlockIoSnapshot | null {
  const blkioDir = v1ControllerDir(loc, 'blkio');
  if (blkioDir !== null) return readV1BlockIo(blkioDir);
  return controllerVersion(loc, 'io') === 2 ? readV2BlockIo(loc.dirs.io as string) : null;
}
