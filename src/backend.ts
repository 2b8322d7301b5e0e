/**
 * One request's path through isolfs, in the order data flows:
 *   caller (pid from the FUSE header) -> identity (its cgroup) -> switches -> snapshot -> view -> bytes.
 * Nothing here formats a file (views do) or parses a cgroup file (readers do).
 */
import path from 'node:path';
import { constants as osConstants } from 'node:os';
import {
  isErrno, type Caller, type ContainerFileRequest, type Errno, type FileBackend, type FileRequest, type GrantedWrite,
  type VersionedContent, type WriteGrant,
} from './fuse/fileBackend';
import { isControlPath, isPressurePath, isViewPath, type ControlPath, type CpuTreePath, type ServedPath, type ViewPath } from './fuse/layout';
import { CPU_TREE_LABEL, cpuCountOfOnline, readCpuTreeFile } from './cpuTree';
import { locateProcess } from './identity/processCgroup';
import { ControlWrites } from './switches/controlWrites';
import type { CgroupHierarchy } from './cgroup/hierarchy';
import type { CgroupLocation } from './cgroup/snapshot';
import { CgroupParseError } from './cgroup/snapshot';
import type { SwitchStore } from './switches/store';
import type { EnvOptOut } from './switches/envOptOut';
import { renderView, hostPathOf, type HostSources } from './files';
import type { ContainerRecord, ContainerRegistry } from './containers/registry';
import { RateLimitedLog, type Logger } from './log';
import { FileReadError, readBoundedBuffer } from './host/boundedRead';

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
/** The tenant of callers we cannot place (outside our pid namespace, exited): one shared share. */
export const UNPLACED_TENANT = '(unplaced)';
/** How long an opener's tenant is kept, and for at most how many pids (a process moved to another cgroup is charged there within it). */
const TENANT_KEPT_MS = 1000;
const TENANTS_KEPT = 4096;

export class IsolfsBackend implements FileBackend {
  private readonly rateLimited = new RateLimitedLog(60_000);
  /** The last version handed out (currentContent): versions are never reused. */
  private lastVersion = 0;
  private readonly switchListeners: Array<() => void> = [];
  /** The last pid placed, reused within the same millisecond (an OPEN asks its tenant, then renders). */
  private lastLocated: { pid: number; atMs: number; location: CgroupLocation } | null = null;
  /** Openers' tenants by pid, each kept TENANT_KEPT_MS (tenantOf). */
  private readonly tenants = new Map<number, { atMs: number; tenant: string }>();

  private readonly controlWrites: ControlWrites;

  constructor(private readonly options: BackendOptions) {
    this.controlWrites = new ControlWrites({
      procRoot: options.procRoot, switches: options.switches, logger: options.logger,
      attachedLocation: (key) => options.containers.attachedLocation(key),
      locate: (pid) => this.locate(pid),
      tenantOf: (key) => options.containers.tenantOf(key),
      changed: () => this.switchChanged(),
    });
  }

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

  /**
   * Whose share a request takes (registry.tenantOf): the opener's, also through a per-container
   * copy, which anyone given the mount can open (charged to the copy's container, another pod
   * drained that container's share). Callers we cannot place share one.
   */
  tenantOf(caller: Caller, _container: string | undefined): string {
    // Kept a second per pid: an open of an attached file would otherwise pay a /proc/<pid>/cgroup read (~20 µs).
    const nowMs = Date.now();
    const kept = this.tenants.get(caller.pid);
    if (kept !== undefined && nowMs - kept.atMs < TENANT_KEPT_MS) return kept.tenant;
    const key = this.locate(caller.pid)?.key;
    const tenant = key === undefined ? UNPLACED_TENANT : this.options.containers.tenantOf(key);
    if (this.tenants.size >= TENANTS_KEPT) this.tenants.clear();
    this.tenants.set(caller.pid, { atMs: nowMs, tenant });
    return tenant;
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

  /** An open of a switch file for writing: what its writes may change (ControlWrites, decided at open). */
  authorizeWrite(request: FileRequest): WriteGrant | Errno {
    return this.controlWrites.authorize(request);
  }

  /** A write through an open file authorizeWrite allowed. */
  write({ grant, data, offset }: GrantedWrite): number | Errno | Promise<number | Errno> {
    return isControlPath(grant.file) ? this.controlWrites.write(grant, data, offset) : { errno: E.EACCES };
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
    const nowMs = Date.now();
    if (this.lastLocated?.pid === pid && this.lastLocated.atMs === nowMs) return this.lastLocated.location;
    const found = locateProcess(this.options.procRoot, this.options.hierarchy, pid);
    if (found.found) this.lastLocated = { pid, atMs: nowMs, location: found.location };
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
}
