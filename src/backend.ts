/**
 * One request's path through isolfs, in the order data flows:
 *   caller (pid from the FUSE header) -> identity (its cgroup) -> switches -> snapshot -> view -> bytes.
 * Nothing here formats a file (views do) or parses a cgroup file (readers do).
 */
import path from 'node:path';
import { constants as osConstants } from 'node:os';
import {
  isErrno, type Caller, type ContainerFileRequest, type Errno, type FileBackend, type FileRequest, type VersionedContent,
  type WriteRequest,
} from './fuse/fileBackend';
import { isControlPath, isPressurePath, isViewPath, type ControlPath, type CpuTreePath, type ServedPath, type ViewPath } from './fuse/layout';
import { CPU_TREE_LABEL, cpuCountOfOnline, readCpuTreeFile } from './cpuTree';
import { locateProcess } from './identity/processCgroup';
import type { CgroupHierarchy } from './cgroup/hierarchy';
import type { CgroupLocation } from './cgroup/snapshot';
import { CgroupParseError } from './cgroup/snapshot';
import type { SwitchStore } from './switches/store';
import type { EnvOptOut } from './switches/envOptOut';
import { parseSwitchWrite } from './switches/controlInput';
import { renderView, hostPathOf, type HostSources } from './files';
import type { ContainerRecord, ContainerRegistry } from './containers/registry';
import { RateLimitedLog, type Logger } from './log';
import { FileReadError, TASK_FILE_MAX_BYTES, readBoundedBuffer, readBoundedText } from './host/boundedRead';

/**
 * Cap for the host's own files served as they are (switch off): /proc/cpuinfo is the largest,
 * ~1.5 KiB per CPU, so this fits ~2,700 CPUs.
 */
const HOST_FILE_MAX_BYTES = 4 * 1024 * 1024;

const { errno: E } = osConstants;

export type Decision =
  | { isolated: false; reason: 'host-switch-off' | 'root-cgroup' | 'opted-out' | 'opted-out-env' | 'unknown-caller' }
  | { isolated: true; container: ContainerRecord };

export interface BackendOptions {
  procRoot: string;
  sysRoot: string;
  hierarchy: CgroupHierarchy;
  switches: SwitchStore;
  envOptOut: EnvOptOut;
  sources: HostSources;
  /** One record per container; also where attached containers (/containers/<key>/) are. */
  containers: ContainerRegistry;
  logger: Logger;
  /** Called after every request with its outcome (metrics). */
  onRequest?: (file: string, result: string, seconds: number) => void;
  /** Called after a switch changed. */
  onSwitchChange?: () => void;
}

/**
 * How long a container's rendered view is reused (see serve). Together with the container-views
 * tree's attribute timeout it bounds how far behind the container a reader can be: 100 ms.
 */
export const RENDER_REUSE_MS = 50;

/** Who "reads" a per-container file: nobody in particular (its content is the container's). */
const ANY_READER: Caller = { pid: 0, uid: 0, gid: 0 };

export class IsolfsBackend implements FileBackend {
  private readonly rateLimited = new RateLimitedLog(60_000);
  /** The last version handed out (currentContent): versions are never reused. */
  private lastVersion = 0;
  private readonly switchListeners: Array<() => void> = [];

  constructor(private readonly options: BackendOptions) {}

  /** Also tell `listener` after a switch changed (the container-views tree refreshes its files). */
  addSwitchListener(listener: () => void): void {
    this.switchListeners.push(listener);
  }

  observe(file: ServedPath, result: string, seconds: number): void {
    // Metric labels come from a small fixed set: the CPU tree's files count as one.
    this.options.onRequest?.(isViewPath(file) || isControlPath(file) || isPressurePath(file) ? file : CPU_TREE_LABEL, result, seconds);
  }

  /** How many cpuN/ directories the reader sees; null: the host's. */
  cpuDirCount(caller: Caller): number | null | Errno {
    const decision = this.decide(caller);
    if (!decision.isolated) return null;
    // The online view's count: rendered at most every RENDER_REUSE_MS, however many cpuN lookups.
    const online = this.serve('/sys/devices/system/cpu/online', decision);
    return isErrno(online) ? online : cpuCountOfOnline(online);
  }

  read({ file, caller, container }: FileRequest): Buffer | Errno {
    if (container !== undefined) {
      const location = this.options.containers.attachedLocation(container);
      if (!location) return { errno: E.ENOENT }; // the container went away since its dir was made
      // Anyone who sees the copy may read it (writes are checked): the bit it shows says less
      // than the container's meminfo beside it, which is as visible.
      if (isControlPath(file)) return this.readControlFor(file, location);
      return this.serve(file, this.decideFor(location));
    }
    if (isControlPath(file)) return this.readControl(file, caller);
    return this.serve(file, this.decide(caller));
  }

  /**
   * An attached container's file now, kept in its record with a version that changes only when
   * the bytes do (the page-cache tree gives the kernel a new mtime then, and only then).
   */
  currentContent({ file, container }: ContainerFileRequest): VersionedContent | Errno {
    const record = this.options.containers.find(container);
    if (!record?.attachedLocation) return { errno: E.ENOENT }; // gone since its dir was made
    const bytes = this.read({ file, caller: ANY_READER, container });
    if (isErrno(bytes)) return bytes;
    record.pageContent ??= new Map();
    const last = record.pageContent.get(file);
    if (last?.bytes.equals(bytes)) return last;
    const current = { bytes, version: ++this.lastVersion };
    record.pageContent.set(file, current);
    return current;
  }

  /**
   * A view of an isolated container: rendered at most every RENDER_REUSE_MS per container and
   * file (every reader of the container within that time gets the same bytes), so a container
   * read in a loop costs one render per period instead of one per read. Failures are not kept.
   */
  private serve(file: Exclude<ServedPath, ControlPath>, decision: Decision): Buffer | Errno {
    // Pressure files: served by IsolfsBackendWithPressure (pressure/backend.ts), never here.
    if (!isViewPath(file)) return isPressurePath(file) ? { errno: E.ENOSYS } : this.serveCpuTree(file, decision);
    if (!decision.isolated) return this.hostFile(file);
    const record = decision.container;
    const nowMs = Date.now();
    const last = record.rendered?.get(file);
    if (last !== undefined && nowMs - last.atMs < RENDER_REUSE_MS && nowMs >= last.atMs) return last.bytes;
    try {
      const bytes = Buffer.from(renderView(file, record, this.options.sources, nowMs), 'utf8');
      record.rendered ??= new Map();
      record.rendered.set(file, { bytes, atMs: nowMs });
      return bytes;
    } catch (err) {
      return this.failure(file, record.location, err);
    }
  }

  /** A file of the CPU tree beside `online`, rendered per read (a few small sysfs files). */
  private serveCpuTree(file: CpuTreePath, decision: Decision): Buffer | Errno {
    const record = decision.isolated ? decision.container : null;
    const result = readCpuTreeFile(file, record, this.options.sources, Date.now());
    if (!('failure' in result)) return result;
    return record ? this.failure(CPU_TREE_LABEL, record.location, result.failure) : { errno: E.EIO };
  }

  write({ file, caller, data, offset, container }: WriteRequest): number | Errno {
    if (!isControlPath(file)) return { errno: E.EACCES };
    if (caller.uid !== 0) return this.refuse(file, caller, 'writer is not uid 0');
    if (file === '/proc/sys/kernel/stats_isolated') {
      if (!this.inHostPidNamespace(caller.pid)) return this.refuse(file, caller, 'writer is not in the host pid namespace');
      return this.setHostSwitch(caller, parseSwitchWrite(data, offset), data.length);
    }
    // Through a per-container copy the write is for that container; through the shared file,
    // for the writer's cgroup. Either way the writer changes only its own container's switch.
    const location = container !== undefined ? this.containerOfWriter(file, caller, container) : this.locate(caller.pid);
    if (location === null) return { errno: E.ESRCH };
    if (isErrno(location)) return location;
    if (location.key === '/') return this.refuse(file, caller, "the host's root cgroup is not a container");
    return this.setContainerSwitch(location, caller, parseSwitchWrite(data, offset), data.length);
  }

  /** kernel.stats_isolated := value (null: not a valid write); answers `accepted` bytes once persisted. */
  private setHostSwitch(caller: Caller, value: boolean | null, accepted: number): number | Errno {
    if (value === null) return { errno: E.EINVAL };
    try {
      this.options.switches.setHostIsolated(value);
    } catch (err) {
      this.options.logger.error({ err: String(err) }, 'cannot persist kernel.stats_isolated: write refused');
      return { errno: E.EIO };
    }
    this.options.logger.info({ value: value ? 1 : 0, pid: caller.pid }, 'kernel.stats_isolated changed');
    this.switchChanged();
    return accepted;
  }

  /** kernel.container_stats_isolated of the container at `location` := value, as setHostSwitch. */
  private setContainerSwitch(location: CgroupLocation, caller: Caller, value: boolean | null, accepted: number): number | Errno {
    if (value === null) return { errno: E.EINVAL };
    try {
      this.options.switches.setContainer(location.key, value);
    } catch (err) {
      this.options.logger.error({ err: String(err), container: location.key }, 'cannot persist kernel.container_stats_isolated: write refused');
      return { errno: E.EIO };
    }
    this.options.logger.info({ container: location.key, value: value ? 1 : 0, pid: caller.pid }, 'kernel.container_stats_isolated changed');
    this.switchChanged();
    return accepted;
  }

  /**
   * The container a write through its per-container copy may change: only when the writer is
   * in that container's cgroup or below it. The copy is visible wherever the mount is (the host,
   * any pod given the mount), so being able to open it proves nothing; host root is no
   * exception (it changes a container's switch from inside it, as the kernel's write did).
   */
  private containerOfWriter(file: ControlPath, caller: Caller, container: string): CgroupLocation | Errno | null {
    const target = this.options.containers.attachedLocation(container);
    if (!target) return null; // the container went away since its dir was made
    const writer = this.locate(caller.pid);
    if (writer !== null && isSameOrBelow(writer.key, target.key)) return target;
    return this.refuse(file, caller, 'writer is not in the container whose copy it writes',
      { container: target.key, writerCgroup: writer?.key ?? null });
  }

  private switchChanged(): void {
    this.options.onSwitchChange?.();
    for (const listener of this.switchListeners) listener();
  }

  /** Whether `caller` gets the isolated view, and of which cgroup. */
  decide(caller: Caller): Decision {
    if (!this.options.switches.hostIsolated) return { isolated: false, reason: 'host-switch-off' };
    const location = this.locate(caller.pid);
    if (!location) return { isolated: false, reason: 'unknown-caller' };
    return this.decideFor(location);
  }

  /** Whether the container at `location` gets the isolated view. */
  decideFor(location: CgroupLocation): Decision {
    const { switches, envOptOut } = this.options;
    if (!switches.hostIsolated) return { isolated: false, reason: 'host-switch-off' };
    if (location.key === '/') return { isolated: false, reason: 'root-cgroup' };
    const nowMs = Date.now();
    const container = this.options.containers.use(location, nowMs);
    const explicit = switches.explicitContainerValue(location.key);
    if (explicit === false) return { isolated: false, reason: 'opted-out' };
    if (explicit === undefined && envOptOut.optedOut(container, nowMs)) return { isolated: false, reason: 'opted-out-env' };
    return { isolated: true, container };
  }

  private locate(pid: number): CgroupLocation | null {
    const found = locateProcess(this.options.procRoot, this.options.hierarchy, pid);
    // Unknown callers get the host's file: a reader that exited is not waiting any more, and one
    // we cannot place must not be shown some other cgroup's view.
    return found.found ? found.location : this.unknownCaller(pid, found.why);
  }

  private unknownCaller(pid: number, why: string): null {
    if (this.rateLimited.allow(`unknown:${why}`, Date.now())) {
      this.options.logger.warn({ pid, why }, "unknown caller: serving the host's file");
    }
    return null;
  }

  private readControl(file: ControlPath, caller: Caller): Buffer | Errno {
    if (file === '/proc/sys/kernel/stats_isolated') return Buffer.from(this.options.switches.hostIsolated ? '1\n' : '0\n');
    const location = this.locate(caller.pid);
    if (!location) return { errno: E.ESRCH };
    return this.readControlFor(file, location);
  }

  private readControlFor(file: ControlPath, location: CgroupLocation): Buffer {
    const { switches, envOptOut } = this.options;
    if (file === '/proc/sys/kernel/stats_isolated') return Buffer.from(switches.hostIsolated ? '1\n' : '0\n');
    const explicit = switches.explicitContainerValue(location.key);
    if (explicit !== undefined) return Buffer.from(explicit ? '1\n' : '0\n');
    // The root cgroup is no container: no record, and nothing it declares in an environment.
    if (location.key === '/') return Buffer.from('1\n');
    const nowMs = Date.now();
    const optedOut = envOptOut.optedOut(this.options.containers.use(location, nowMs), nowMs);
    return Buffer.from(optedOut ? '0\n' : '1\n');
  }

  private hostFile(file: ViewPath): Buffer | Errno {
    const hostPath = hostPathOf(file, this.options.sources);
    try {
      return readBoundedBuffer(path.dirname(hostPath), path.basename(hostPath), HOST_FILE_MAX_BYTES);
    } catch (err) {
      if (this.rateLimited.allow(`host:${file}`, Date.now())) {
        this.options.logger.error({ file, hostPath, err: String(err) }, "cannot read the host's file");
      }
      // The kernel's errno where there is one (ENOENT, EACCES); EIO for "not a regular file" or "too big".
      const code = err instanceof FileReadError ? (E as Record<string, number>)[err.code] : undefined;
      return { errno: code ?? E.EIO };
    }
  }

  private failure(file: ViewPath | typeof CPU_TREE_LABEL, location: CgroupLocation, err: unknown): Errno {
    const key = `fail:${file}:${location.key}`;
    if (this.rateLimited.allow(key, Date.now())) {
      const detail = err instanceof CgroupParseError ? { dir: err.dir, cgroupFile: err.file } : {};
      this.options.logger.error({ file, container: location.key, err: String(err), ...detail },
        'cannot build the view: answering EIO');
    }
    return { errno: E.EIO };
  }

  private refuse(file: ControlPath, caller: Caller, why: string, detail: object = {}): Errno {
    // Rate-limited per file, reason and writer: a container writing in a loop must not flood the log.
    if (this.rateLimited.allow(`refuse:${file}:${why}:${caller.uid}:${JSON.stringify(detail)}`, Date.now())) {
      this.options.logger.warn({ file, pid: caller.pid, uid: caller.uid, why, ...detail }, 'control write refused');
    }
    return { errno: E.EPERM };
  }

  /**
   * Whether the writer lives in the pid namespace our procfs belongs to (the host's, under
   * hostPID). `NSpid` in /proc/<pid>/status lists the task's id in that namespace and in every
   * nested one, so exactly one entry means "not in a child pid namespace". Unlike comparing
   * /proc/<pid>/ns/pid links this needs no ptrace access (readlink of /proc/1/ns/pid is refused
   * in some sandboxes even to root).
   */
  private inHostPidNamespace(pid: number): boolean {
    if (pid <= 0) return false;
    let status: string;
    try {
      status = readBoundedText(path.join(this.options.procRoot, String(pid)), 'status', TASK_FILE_MAX_BYTES);
    } catch {
      return false;
    }
    const line = /^NSpid:\s*(.*)$/m.exec(status);
    if (!line) return false;
    return line[1].trim().split(/\s+/).length === 1;
  }
}

/** Whether cgroup `key` is `container` itself or one of its descendants (paths, not prefixes). */
export function isSameOrBelow(key: string, container: string): boolean {
  if (key === container) return true;
  const prefix = container.endsWith('/') ? container : `${container}/`;
  return key.startsWith(prefix);
}
