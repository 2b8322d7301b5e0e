// A container's /proc/<tid>/stat files kept open between task counts. Counting a container's
// thread states (procs_running, loadavg) reads one /proc/<tid>/stat per thread; opening it costs
// the kernel a /proc lookup and a seq_file set-up (~36 µs measured here, with the close), reading
// it again through a kept fd ~6 µs. At 500 read containers that was a third of a /proc/stat render.
//
// A kept fd names the task, not its number: once the task exits, its fd answers ESRCH even when a
// new task got the same tid (pid reuse), and the new one is opened afresh. Tasks no longer listed
// in the container's cgroup are closed after each count (keepOnly), so a container holds at most
// the fds of the tasks it had at its last count, and the registry's drop closes them all.
//
// Bounded node-wide by one budget (a container can have thousands of threads, and each kept fd
// holds its seq_file's 4 KiB buffer in kernel memory charged to the daemon), and per container
// (one container's 100k threads cannot take every other container's share): beyond either, a
// task's file is opened per read, as before.
import fs from 'node:fs';
import { FileReadError, TASK_FILE_MAX_BYTES, isReadErrorCode, openRegular, rereadKernfsPrefix } from './boundedRead';
import { shareOfFdLimit } from './heldFiles';

/** Default node-wide cap of kept task files (~9 MiB of seq_file buffers at most). */
export const DEFAULT_MAX_TASK_FDS = 2048;
/** Default cap of one container's kept task files: a JVM's or a runtime's few hundred threads. */
export const DEFAULT_MAX_TASK_FDS_PER_CONTAINER = 256;
/** Never more than this share of the process's fd limit (heldFiles.ts takes a quarter). */
const FD_LIMIT_SHARE = 8;

/** How many task files may be kept open, shared by every container's TaskStatFiles. */
export class TaskFdBudget {
  held = 0;
  constructor(readonly max: number) {
    if (!(max >= 0)) throw new RangeError(`max must be >= 0: ${max}`);
  }
}

export class TaskStatFiles {
  /** By tid (as listed in the cgroup's task list). */
  private readonly fds = new Map<string, number>();

  constructor(
    private readonly budget: TaskFdBudget,
    private readonly maxKept = DEFAULT_MAX_TASK_FDS_PER_CONTAINER,
  ) {}

  /**
   * `procRoot/<id>/stat` (id: digits, checked by the caller), or null when the task is gone.
   * Throws FileReadError for anything else, as readBoundedText does.
   */
  read(procRoot: string, id: string): string | null {
    const kept = this.fds.get(id);
    if (kept !== undefined) {
      try {
        return textOf(kept, procRoot, id);
      } catch {
        // Exited (ESRCH), perhaps with its tid taken by a new task since: open the tid again.
        this.close(id, kept);
      }
    }
    let fd: number;
    try {
      fd = openRegular(`${procRoot}/${id}`, 'stat');
    } catch (err) {
      if (isReadErrorCode(err, 'ENOENT', 'ESRCH')) return null; // exited since it was listed
      throw err;
    }
    let text: string;
    try {
      text = textOf(fd, procRoot, id);
    } catch (err) {
      fs.closeSync(fd);
      if (isReadErrorCode(err, 'ENOENT', 'ESRCH')) return null;
      throw err;
    }
    if (this.budget.held < this.budget.max && this.fds.size < this.maxKept) {
      this.fds.set(id, fd);
      this.budget.held++;
    } else {
      fs.closeSync(fd);
    }
    return text;
  }

  /** Closes the files of tasks not in `listed` (exited, or moved to another cgroup). */
  keepOnly(listed: ReadonlySet<string>): void {
    for (const [id, fd] of this.fds) if (!listed.has(id)) this.close(id, fd);
  }

  /** Closes every kept file (the container's record is dropped). */
  closeAll(): void {
    for (const [id, fd] of this.fds) this.close(id, fd);
  }

  get size(): number {
    return this.fds.size;
  }

  private close(id: string, fd: number): void {
    this.fds.delete(id);
    this.budget.held--;
    fs.closeSync(fd);
  }
}

function textOf(fd: number, procRoot: string, id: string): string {
  // /proc/<tid>/stat is one record generated whole (single_open): a short read is the end.
  const { bytes, truncated } = rereadKernfsPrefix(fd, `${procRoot}/${id}`, 'stat', TASK_FILE_MAX_BYTES);
  if (truncated) throw new FileReadError(`${procRoot}/${id}`, 'stat', 'TOO_LARGE', `larger than ${TASK_FILE_MAX_BYTES} bytes`);
  return bytes.toString('utf8');
}

/** The daemon's budget, shared by every container's task files. */
export const taskFdBudget = new TaskFdBudget(shareOfFdLimit(DEFAULT_MAX_TASK_FDS, FD_LIMIT_SHARE));
