/**
 * Open files: the handles OPEN hands out, the content each read handle was opened with, and the
 * READs and WRITEs that reach TypeScript. The bytes come from the FileBackend.
 */
import { constants as osConstants } from 'node:os';
import { isErrno, type Caller, type Errno, type FileBackend, type TriggerLease, type WriteGrant } from './fileBackend';
import type { FileNode } from './inodes';
import { isControlPath, isPressurePath } from './layout';
import type { FuseRequest, NativeAddon, NativeSession } from './native';

const { errno: E } = osConstants;

/** What an operation returns once it answered the request itself; anything else is an errno to answer with. */
export const REPLIED = -1;

/** Open handles allowed by default: ~100 bytes each once read, so 65536 cost a few MB. */
export const DEFAULT_MAX_OPEN_HANDLES = 65536;
/** Open handles allowed to one tenant (backend's tenantOf) by default: no pod can take the pool. */
export const DEFAULT_MAX_OPEN_HANDLES_PER_TENANT = 4096;
/** onLimit is called at most this often while opens are refused. */
const LIMIT_REPORT_INTERVAL_MS = 10_000;

export interface OpenFilesOptions {
  /** Past this many open files, OPEN answers ENFILE (default DEFAULT_MAX_OPEN_HANDLES). */
  maxOpenHandles?: number;
  /** Past this many open files of one tenant, its OPEN answers ENFILE (default: maxOpenHandles; the daemon's: DEFAULT_MAX_OPEN_HANDLES_PER_TENANT). */
  maxOpenHandlesPerTenant?: number;
  /** Told how many opens were refused since its last call (at most every 10 s): a log line. */
  onLimit?: (refused: number) => void;
  /** Told of a tenant at its own cap (at most every 10 s per tenant): a log line. */
  onTenantLimit?: (tenant: string, refused: number) => void;
}

/**
 * Asked of native for every readable handle: a READ from offset 0 after the handle was read comes
 * to read(), which renders afresh, as the kernel's seq_file does for samplers (vmstat 1, top).
 */
const FRESH_ON_REWIND = true;

interface OpenHandle {
  node: FileNode;
  /** Opened for reading: the native side holds its content (see read()). */
  readable: boolean;
  caller: Caller;
  /** Whose share of the open handles it takes. */
  tenant: string;
  /** Opened for writing: what its writes may do, decided at open against the opener. */
  grant?: WriteGrant;
  /** A pressure file's PSI trigger: its real fd is watched by native (see poll()). */
  trigger?: TriggerLease;
}

/** poll(2) bits (FUSE passes them as they are). */
const POLLPRI = 0x2;
const POLLERR = 0x8;
/** The kernel's DEFAULT_POLLMASK: POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM. */
const DEFAULT_POLLMASK = 0x1 | 0x4 | 0x40 | 0x100;

export class OpenFiles {
  private readonly handles = new Map<number, OpenHandle>();
  private nextFh = 1;
  private readonly maxOpenHandles: number;
  private readonly maxOpenHandlesPerTenant: number;
  /** Open handles per tenant (only tenants with some). */
  private readonly perTenant = new Map<string, number>();
  private refusedOpens = 0;
  private lastLimitReportMs = Number.NEGATIVE_INFINITY;
  /** Per tenant at its cap: opens refused since its last report, and when that was (bounded: see refuseTenantOpen). */
  private readonly tenantRefusals = new Map<string, { refused: number; reportedMs: number }>();

  constructor(
    private readonly native: NativeAddon,
    private readonly backend: FileBackend,
    private readonly options: OpenFilesOptions = {},
  ) {
    this.maxOpenHandles = options.maxOpenHandles ?? DEFAULT_MAX_OPEN_HANDLES;
    this.maxOpenHandlesPerTenant = Math.min(options.maxOpenHandlesPerTenant ?? this.maxOpenHandles, this.maxOpenHandles);
  }

  get count(): number {
    return this.handles.size;
  }

  /**
   * OPEN of `node`; a write-only open renders nothing. `writing`: a writable file opened for
   * writing, whose permission is decided here, against the opener, as the kernel decides it.
   */
  open(req: FuseRequest, node: FileNode, reading: boolean, writing = false): number {
    if (this.handles.size >= this.maxOpenHandles) return this.refuseOpen();
    const caller = callerOf(req);
    const tenant = this.backend.tenantOf?.(caller, node.container) ?? '';
    const held = this.perTenant.get(tenant) ?? 0;
    if (held >= this.maxOpenHandlesPerTenant) return this.refuseTenantOpen(tenant);
    const grant = writing ? this.backend.authorizeWrite({ file: node.path, caller, container: node.container }) : undefined;
    if (grant !== undefined && isErrno(grant)) return grant.errno;
    const content = reading ? this.render(node, caller) : undefined;
    if (content !== undefined && isErrno(content)) return content.errno;
    const fh = this.nextFh++;
    this.handles.set(fh, { node, readable: content !== undefined, caller, tenant, grant });
    this.perTenant.set(tenant, held + 1);
    // Direct I/O: read(2) comes to us for every reader. splice, sendfile (busybox cat) and mmap
    // read through the page cache instead, up to the inode's size (0 here), so they see an empty
    // file. A shared inode's content depends on the reader, so nothing of it ever goes into its
    // page cache: those readers get an empty file there (attached per-container files are the
    // way for them). A per-container inode has one content for every reader: native's notifier
    // thread stores it first, which sets the size (the pages are dropped again when the open
    // completes, no keep_cache), so the reader's own READs fetch its bytes.
    const storeFirst = content !== undefined && content.length > 0 && node.container !== undefined;
    if (storeFirst) node.sizeBytes = content.length;
    this.native.replyOpen(req.id, fh, true, false, false, content, storeFirst, FRESH_ON_REWIND);
    return REPLIED;
  }

  /** A READ that native passed on (see below); `session` takes the fresh content. */
  read(req: FuseRequest, session: NativeSession | null): number {
    const handle = this.handles.get(req.fh);
    if (!handle?.readable) return E.EBADF;
    // The native side answers a handle's READs from the content captured at open. The ones it
    // passes on are rewinds to offset 0 (we asked for them: FRESH_ON_REWIND) and reads of bytes
    // it no longer holds (it frees its copy once all was delivered). Tools that sample
    // (vmstat 1, top, free -s, procps 4's library) open a /proc file once and lseek(0) + read it
    // every interval, and the kernel's seq_file renders afresh on every read from offset 0, so we
    // do too, for whoever reads now (pid 0 if not visible to us: the opener then), and hand
    // native the new content for the READs that follow.
    const fresh = this.render(handle.node, req.pid !== 0 ? callerOf(req) : handle.caller);
    if (isErrno(fresh)) return fresh.errno;
    if (session) this.native.setContent(session, req.fh, fresh);
    const offset = req.offset;
    const size = req.size;
    if (offset >= fresh.length) this.native.replyBuf(req.id, EMPTY);
    else this.native.replyBuf(req.id, offset === 0 && size >= fresh.length ? fresh : fresh.subarray(offset, offset + size));
    return REPLIED;
  }

  write(req: FuseRequest, session: NativeSession | null): number {
    const handle = this.handles.get(req.fh);
    if (!handle) return E.EBADF;
    const { path } = handle.node;
    // The kernel refuses write(2) on an fd not opened for writing before we hear of it.
    if (!handle.grant) return E.EBADF;
    if (isPressurePath(path)) return this.writeTrigger(req, handle, session);
    if (!isControlPath(path)) return E.EACCES;
    const result = this.backend.write({ grant: handle.grant, data: req.data ?? EMPTY, offset: req.offset });
    if (!(result instanceof Promise)) return this.replyWrite(req.id, path, result);
    // Answered once durable (a switch): the main thread serves others meanwhile.
    const id = req.id;
    void result.then((settled) => {
      const errno = this.replyWrite(id, path, settled);
      try { if (errno !== REPLIED) this.native.replyErr(id, errno); } catch { /* the mount went away meanwhile */ }
    });
    return REPLIED;
  }

  private replyWrite(id: number, path: string, result: number | Errno): number {
    this.backend.observe?.(path as FileNode['path'], isErrno(result) ? `errno-${result.errno}` : 'write', 0);
    if (isErrno(result)) return result.errno;
    try { this.native.replyWrite(id, result); } catch { /* the mount went away meanwhile */ }
    return REPLIED;
  }

  /**
   * A PSI trigger: written to the real pressure file (the backend's lease), whose fd native
   * then watches for this handle. One per open file, as in the kernel (EBUSY after).
   */
  private writeTrigger(req: FuseRequest, handle: OpenHandle, session: NativeSession | null): number {
    // A trigger whose cgroup was removed: ENODEV, as kernfs answers a removed file's write.
    if (handle.trigger) return session && this.native.pollWatchGone(session, req.fh) ? E.ENODEV : E.EBUSY;
    if (!(session && this.backend.openTrigger)) return E.EOPNOTSUPP;
    const data = req.data ?? EMPTY;
    const { path, container } = handle.node;
    // As its opener: the file's cgroup and the trigger's privilege are the opener's (f_cred).
    const privileged = handle.grant?.privileged;
    const lease = this.backend.openTrigger({ file: path, caller: handle.caller, container, data, offset: req.offset, ...(privileged === undefined ? {} : { privileged }) });
    this.backend.observe?.(path, isErrno(lease) ? `errno-${lease.errno}` : 'trigger', 0);
    if (isErrno(lease)) return lease.errno;
    const watched = this.native.watchPoll(session, req.fh, lease.fd);
    if (watched !== 0) {
      lease.release(true);
      return watched;
    }
    handle.trigger = lease;
    this.native.replyWrite(req.id, data.length);
    return REPLIED;
  }

  /**
   * POLL, answered as the kernel's pressure files answer it (psi_trigger_poll): without a
   * trigger POLLERR | POLLPRI; with one, POLLPRI once per event of its real fd, and POLLERR |
   * POLLPRI at every POLL once its cgroup was removed (kernfs_fop_poll). Other files are
   * always ready, as a regular file is.
   */
  poll(req: FuseRequest, session: NativeSession | null): number {
    const handle = this.handles.get(req.fh);
    if (!handle) return E.EBADF;
    let revents = DEFAULT_POLLMASK;
    if (isPressurePath(handle.node.path)) {
      if (!handle.trigger) revents |= POLLERR | POLLPRI;
      else if (session) revents |= this.native.takePollEvent(session, req.fh) & (POLLPRI | POLLERR);
    }
    this.native.replyPoll(req.id, revents);
    return REPLIED;
  }

  /** RELEASE: native has answered it (id -1) and dropped its copy; the handle goes, with its trigger. */
  release(fh: number, session: NativeSession | null): void {
    const handle = this.handles.get(fh);
    if (handle) {
      const left = (this.perTenant.get(handle.tenant) ?? 1) - 1;
      if (left > 0) this.perTenant.set(handle.tenant, left);
      else this.perTenant.delete(handle.tenant);
    }
    const trigger = handle?.trigger;
    if (trigger) {
      // native closes the fd (now, or it did at unmount): never close a number it may reuse
      if (session) this.native.unwatchPoll(session, fh);
      trigger.release(false);
    }
    this.handles.delete(fh);
  }

  /** ENFILE past the cap on open handles, told to onLimit at most every 10 s. */
  private refuseOpen(): number {
    this.refusedOpens++;
    const nowMs = Date.now();
    if (this.options.onLimit && nowMs - this.lastLimitReportMs >= LIMIT_REPORT_INTERVAL_MS) {
      this.lastLimitReportMs = nowMs;
      const refused = this.refusedOpens;
      this.refusedOpens = 0;
      this.options.onLimit(refused);
    }
    return E.ENFILE;
  }

  /**
   * ENFILE for a tenant at its own cap (the node-wide one is not reached), told to
   * onTenantLimit at most every 10 s per tenant. The reports kept are bounded by the tenants
   * at their cap, each of which holds maxOpenHandlesPerTenant handles.
   */
  private refuseTenantOpen(tenant: string): number {
    const nowMs = Date.now();
    const report = this.tenantRefusals.get(tenant) ?? { refused: 0, reportedMs: Number.NEGATIVE_INFINITY };
    report.refused++;
    if (nowMs - report.reportedMs >= LIMIT_REPORT_INTERVAL_MS) {
      this.options.onTenantLimit?.(tenant, report.refused);
      report.refused = 0;
      report.reportedMs = nowMs;
    }
    this.tenantRefusals.set(tenant, report);
    if (this.tenantRefusals.size > this.maxOpenHandles / this.maxOpenHandlesPerTenant + 1) {
      for (const [key, kept] of this.tenantRefusals) if (nowMs - kept.reportedMs >= LIMIT_REPORT_INTERVAL_MS) this.tenantRefusals.delete(key);
      if (this.tenantRefusals.size > this.maxOpenHandles / this.maxOpenHandlesPerTenant + 1) this.tenantRefusals.clear();
    }
    return E.ENFILE;
  }

  /** The backend's bytes for `node` as `caller` sees them, timed for metrics. */
  private render(node: FileNode, caller: Caller): Buffer | Errno {
    const started = process.hrtime.bigint();
    const result = this.backend.read({ file: node.path, caller, container: node.container });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.backend.observe?.(node.path, isErrno(result) ? `errno-${result.errno}` : 'ok', seconds);
    return result;
  }
}

const EMPTY = Buffer.alloc(0);

/** A copy of the request's caller: kept past the request (an open handle keeps its opener). */
function callerOf(req: FuseRequest): Caller {
  return { pid: req.pid, uid: req.uid, gid: req.gid };
}
