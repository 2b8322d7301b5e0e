/**
 * /proc/<pid>/cgroup: which cgroup a task is in, per v1 hierarchy and in the v2 (unified) one.
 *
 * The kernel prints one line per mounted hierarchy (kernel/cgroup/cgroup.c, proc_cgroup_show):
 *   "<hierarchy id>:<controllers, comma separated>[,name=<name>]:<path>"
 * v1 hierarchies have an id > 0 and at least one controller or a name ("name=systemd");
 * the v2 hierarchy is "0::<path>". The path is relative to the reader's cgroup namespace: a
 * task outside that namespace's root shows as "/../..". Cgroup names may contain ':', so the
 * path is everything after the second ':'.
 */
import { TASK_FILE_MAX_BYTES, isReadErrorCode, readBoundedText } from '../host/boundedRead';
import { shown } from '../cgroup/parse';

export interface ProcCgroupEntries {
  /** v1 controller (or "name=<name>" for named hierarchies) -> cgroup path; co-mounted
   *  controllers ("cpu,cpuacct") each get their own entry with the same path. */
  v1: Map<string, string>;
  /** The "0::" path, or null when the kernel has no cgroup2 hierarchy mounted/visible. */
  unified: string | null;
  /**
   * True when any path starts with "/..": the task is outside the reader's cgroup namespace,
   * so the paths are relative to a root we cannot see and cannot be resolved in our mounts.
   * The paths are kept verbatim. (Run the daemon in the host's cgroup namespace to avoid it.)
   */
  relativeToOtherNamespace: boolean;
}

/** A /proc/<pid>/cgroup text that is not the kernel's format. */
export class ProcCgroupParseError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ProcCgroupParseError';
  }
}

/** Parse the text of /proc/<pid>/cgroup. Blank lines are skipped; a malformed line throws a
 *  ProcCgroupParseError. */
export function parseProcCgroup(text: string): ProcCgroupEntries {
  const v1 = new Map<string, string>();
  let unified: string | null = null;
  let relativeToOtherNamespace = false;
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const { controllers, cgroupPath } = parseLine(line, index + 1);
    if (cgroupPath === '/..' || cgroupPath.startsWith('/../')) relativeToOtherNamespace = true;
    if (controllers === null) unified = cgroupPath;
    else for (const controller of controllers) v1.set(controller, cgroupPath);
  }
  return { v1, unified, relativeToOtherNamespace };
}

/** One "id:controllers:path" line: its v1 controllers (null for cgroup2's "0::") and its path. */
function parseLine(line: string, lineNumber: number): { controllers: string[] | null; cgroupPath: string } {
  const fail = (why: string) =>
    new ProcCgroupParseError(`/proc/<pid>/cgroup line ${lineNumber} ${why}: ${shown(line)}`);
  const firstColon = line.indexOf(':');
  const secondColon = firstColon < 0 ? -1 : line.indexOf(':', firstColon + 1);
  if (secondColon < 0) throw fail('is not "id:controllers:path"');
  const id = line.slice(0, firstColon);
  const controllers = line.slice(firstColon + 1, secondColon);
  const cgroupPath = line.slice(secondColon + 1);
  if (!/^\d+$/.test(id)) throw fail('has a non-numeric hierarchy id');
  if (!cgroupPath.startsWith('/')) throw fail('has a path that does not start with "/"');

  if (id === '0') {
    if (controllers !== '') throw fail('is hierarchy 0 (cgroup2) but lists controllers');
    return { controllers: null, cgroupPath };
  }
  if (controllers === '') throw fail('is a v1 hierarchy without controllers or name');
  const names = controllers.split(',');
  if (names.includes('')) throw fail('has an empty controller name');
  return { controllers: names, cgroupPath };
}

/**
 * Read and parse /proc/<pid>/cgroup under `procRoot`. Returns null when the task is gone
 * (ENOENT: exited and reaped; ESRCH: exiting while we read). Other read failures throw a
 * FileReadError (boundedRead.ts), a malformed file a ProcCgroupParseError.
 *
 * `pid` may be a thread id: the pid FUSE reports for a request is the calling *thread*.
 * /proc/<tid>/... resolves for any thread id even though only thread-group leaders are listed
 * in /proc, and it shows that thread's own cgroup (which can differ from its process's in v2
 * threaded subtrees) — the right answer for "who is asking".
 */
export function readProcCgroup(procRoot: string, pid: number): ProcCgroupEntries | null {
  let text: string;
  try {
    text = readBoundedText(`${procRoot}/${pid}`, 'cgroup', TASK_FILE_MAX_BYTES);
  } catch (err) {
    if (isReadErrorCode(err, 'ENOENT', 'ESRCH')) return null;
    throw err;
  }
  try {
    return parseProcCgroup(text);
  } catch (err) {
    throw new ProcCgroupParseError(`${procRoot}/${pid}/cgroup: ${(err as Error).message}`, { cause: err });
  }
}
