/**
 * The tasks of a cgroup: thread states (for loadavg and /proc/stat's procs_running /
 * procs_blocked), process count, and the oldest process (the container's uptime, and whose
 * environment the env opt-out reads).
 *
 * A container's tasks include those in its child cgroups (systemd or a nested runtime inside
 * the container creates them), so both functions descend into child cgroups, up to
 * MAX_CHILD_DEPTH levels below the container's own: deep enough for those layouts, bounded so
 * that one container with a huge tree cannot stall a read.
 *
 * The thread and process ids in tasks / cgroup.threads / cgroup.procs are in the pid namespace
 * of whoever opened the file — the daemon — so they resolve in `procRoot`, the daemon's /proc.
 *
 * Every read is bounded (host/boundedRead.ts), and so is the walk: MAX_CHILD_DEPTH levels,
 * MAX_CGROUPS_PER_TREE cgroups, TASK_LIST_MAX_BYTES per list; a cut makes counts a lower bound.
 */
import fs from 'node:fs';
import type { CgroupLocation, TaskCounts } from './snapshot';
import { CgroupParseError } from './snapshot';
import { processListDir } from './hierarchy';
import { shown } from './parse';
import type { TaskStatFiles } from '../host/taskStatFiles';
import { DEFAULT_MAX_BYTES, TASK_FILE_MAX_BYTES, isReadErrorCode, readBoundedPrefix, readBoundedText } from '../host/boundedRead';

/** Child-cgroup levels searched below the container's cgroup (LXCFS's loadavg also uses 3). */
export const MAX_CHILD_DEPTH = 3;

/** Upper bound of processes examined for the container's start time. */
export const MAX_PROCESSES_FOR_START_TIME = 20_000;

/** Upper bound of cgroups (the container's and its children) visited per count. */
export const MAX_CGROUPS_PER_TREE = 1000;

/** Bytes read of one task list (tasks, cgroup.threads, cgroup.procs): ~130k ids. */
export const TASK_LIST_MAX_BYTES = DEFAULT_MAX_BYTES;

/** Set when a bound cut the work short: the counts are then a lower bound. */
interface Cut {
  truncated: boolean;
}

/** The cgroup and its child cgroups, breadth first, up to MAX_CHILD_DEPTH levels below it and
 *  MAX_CGROUPS_PER_TREE cgroups in all (a container may create any number of children). */
function cgroupTree(dir: string, cut: Cut): string[] {
  const dirs = [dir];
  let level = [dir];
  for (let depth = 0; depth < MAX_CHILD_DEPTH && level.length > 0; depth++) {
    const next: string[] = [];
    for (const parent of level) {
      if (!childDirs(parent, parent === dir, next, MAX_CGROUPS_PER_TREE - dirs.length)) cut.truncated = true;
    }
    dirs.push(...next);
    level = next;
  }
  return dirs;
}

/** Appends child directories of `parent` to `out` while it holds fewer than `room`; false
 *  when some were left out. Reads the directory in batches, never all of it at once. */
function childDirs(parent: string, mustExist: boolean, out: string[], room: number): boolean {
  // A directory's link count is 2 + its subdirectories (kernfs keeps it so, as most file systems
  // do; btrfs says 1, and is read): 2 = no child cgroup, one stat instead of reading ~60 entries.
  const stat = fs.statSync(parent, { throwIfNoEntry: false });
  if (stat === undefined && !mustExist) return true; // a child removed since it was listed
  if (stat?.isDirectory() === true && stat.nlink === 2) return true;
  let handle: fs.Dir;
  try {
    handle = fs.opendirSync(parent);
  } catch (err) {
    // A child removed between listing and reading: skip it. The top dir must exist.
    if (!mustExist && (err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    // biome-ignore lint/style/useErrorCause: the cause is passed; Biome looks for it in the 2nd argument only, CgroupParseError takes it 4th
    throw new CgroupParseError(parent, '', (err as Error).message, { cause: err });
  }
  try {
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
      if (!entry.isDirectory()) continue;
      if (out.length >= room) return false;
      out.push(`${parent}/${entry.name}`);
    }
    return true;
  } finally {
    handle.closeSync();
  }
}

/** Ids listed in `file` of each cgroup in `dirs`; a child cgroup that vanished is skipped. A
 *  list longer than TASK_LIST_MAX_BYTES is cut there (cut.truncated). */
function* listedIds(dirs: string[], file: string, cut: Cut): Generator<string> {
  const top = dirs[0];
  for (const dir of dirs) {
    const listed = readTreeList(dir, file, dir === top);
    if (listed === null) continue;
    const lines = listed.text.split('\n');
    if (listed.truncated) {
      lines.pop(); // the last id may be cut in the middle
      cut.truncated = true;
    }
    for (const line of lines) if (line !== '') yield line;
  }
}

/** `file` of `dir`, cut at TASK_LIST_MAX_BYTES; null for a child cgroup removed since the walk
 *  (the container's own cgroup, `isTop`, must have the file). */
function readTreeList(dir: string, file: string, isTop: boolean): { text: string; truncated: boolean } | null {
  let listed: { text: string; truncated: boolean } | null;
  try {
    listed = readListPrefix(dir, file);
  } catch (err) {
    if (!isTop && err instanceof CgroupParseError) return null; // removed child cgroup
    throw err;
  }
  if (listed === null && isTop) throw new CgroupParseError(dir, file, 'file does not exist');
  return listed;
}

function readListPrefix(dir: string, file: string): { text: string; truncated: boolean } | null {
  try {
    return readBoundedPrefix(dir, file, TASK_LIST_MAX_BYTES);
  } catch (err) {
    if (isReadErrorCode(err, 'ENOENT')) return null;
    throw err;
  }
}

/** /proc/<id>/stat, or null when the task is gone. */
function readTaskStat(procRoot: string, id: string): string | null {
  checkedTaskId(procRoot, id);
  try {
    return readBoundedText(`${procRoot}/${id}`, 'stat', TASK_FILE_MAX_BYTES);
  } catch (err) {
    if (isReadErrorCode(err, 'ENOENT', 'ESRCH')) return null; // exited since it was listed
    throw err;
  }
}

/** `id`, when it is one: an id from a task list is digits; anything else would name some other file. */
function checkedTaskId(procRoot: string, id: string): string {
  if (!/^\d{1,10}$/.test(id)) throw new CgroupParseError(procRoot, id, 'listed task id is not a number');
  return id;
}

/** Where the fields after the command name start. The command ("(name)") may contain spaces
 *  and ')', so they start after the *last* ')'. */
function afterComm(text: string, procRoot: string, id: string): number {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new CgroupParseError(`${procRoot}/${id}`, 'stat', `no ")": ${shown(text)}`);
  return close + 2;
}

/** /proc/<id>/stat split after the command name, or null when the task is gone. */
function statFieldsAfterComm(procRoot: string, id: string): string[] | null {
  const text = readTaskStat(procRoot, id);
  // Field 3 (state) is index 0 here; field N is index N - 3.
  return text === null ? null : text.slice(afterComm(text, procRoot, id)).split(' ');
}

/** The task's state letter (field 3 of /proc/<id>/stat), or null when the task is gone. Counted
 *  at every /proc/stat render and load sample: one character, not the ~50 fields split. */
function taskState(procRoot: string, id: string, statFiles: TaskStatFiles | undefined): string | null {
  const text = statFiles === undefined ? readTaskStat(procRoot, id) : statFiles.read(procRoot, checkedTaskId(procRoot, id));
  return text === null ? null : text.charAt(afterComm(text, procRoot, id));
}

/**
 * Count the threads of the cgroup at `loc` (and its child cgroups) by state. Stops after `maxTasks` threads (truncated = true: the counts are a lower bound).
 * A thread that exits between listing and reading is not counted. Throws CgroupParseError when
 * the cgroup itself is gone (callers forget such a cgroup).
 */
export function readTreeTaskCounts(loc: CgroupLocation, procRoot: string, maxTasks: number, statFiles?: TaskStatFiles): TaskCounts {
  const counts: TaskCounts = { running: 0, blocked: 0, total: 0, truncated: false };
  const files = processListDir(loc);
  if (files === null) return counts;
  const dirs = cgroupTree(files.dir, counts);

  const listed = new Set<string>();
  for (const tid of listedIds(dirs, files.threadsFile, counts)) {
    if (counts.total >= maxTasks) {
      counts.truncated = true;
      break;
    }
    listed.add(tid);
    const state = taskState(procRoot, tid, statFiles);
    if (state === null) continue;
    counts.total++;
    // The kernel's loadavg counts R (runnable) and D (uninterruptible) tasks.
    if (state === 'R') counts.running++;
    else if (state === 'D') counts.blocked++;
  }
  // (No process count: nothing shows one, and its cgroup.procs read was ~15% of a count.)
  statFiles?.keepOnly(listed);
  return counts;
}

/** A container's first process: the one with the smallest start time. */
export interface OldestProcess {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks since boot. */
  startTicks: bigint;
}

/**
 * The oldest process of the cgroup at `loc` and its child cgroups; null when it has none. The
 * container's start for /proc/uptime, and whose environment the env opt-out reads. At most
 * `maxProcesses` processes are read.
 */
export function readOldestProcess(
  loc: CgroupLocation,
  procRoot: string,
  maxProcesses: number = MAX_PROCESSES_FOR_START_TIME,
): OldestProcess | null {
  const files = processListDir(loc);
  if (files === null) return null;
  let oldest: OldestProcess | null = null;
  let examined = 0;
  const cut: Cut = { truncated: false };
  for (const pid of listedIds(cgroupTree(files.dir, cut), 'cgroup.procs', cut)) {
    if (examined++ >= maxProcesses) break;
    const fields = statFieldsAfterComm(procRoot, pid);
    if (fields === null) continue;
    const token = fields[22 - 3];
    if (token === undefined || !/^\d{1,20}$/.test(token)) {
      throw new CgroupParseError(`${procRoot}/${pid}`, 'stat', `field 22 (starttime) is not a number: ${shown(token ?? '')}`);
    }
    const startTicks = BigInt(token);
    if (oldest === null || startTicks < oldest.startTicks) oldest = { pid: Number(pid), startTicks };
  }
  return oldest;
}
