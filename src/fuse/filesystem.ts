/**
 * The FUSE side of isolfs: a static inode tree, open-file handles, and the typed operations.
 * It knows nothing of cgroups or views: it asks a `FileBackend` for bytes (at open, and for a
 * re-read from offset 0) and hands it writes, together with who the caller is (the FUSE request
 * header's pid/uid/gid).
 *
 * Two rules (README, "Design rules"): content that depends on the reader never goes into a page
 * cache another reader can see (shared files: direct I/O, size 0); no thread that serves requests
 * waits on the kernel for what only it can provide (page-cache stores run on native's notifier).
 */
import { createHash } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { FuseRequest, type LoopMode, type NativeAddon, type NativeSession } from './native';
import { CONTROL_PATHS, VIEW_PATHS, isControlPath, type ServedPath } from './layout';

const { errno: E } = osConstants;

/** Who made a request, from the FUSE request header. pid is a thread id (0: not visible to us). */
export interface Caller {
  pid: number;
  uid: number;
  gid: number;
}

/** An errno to answer with, e.g. { errno: E.EINVAL }. */
export interface Errno {
  errno: number;
}

export function isErrno(value: unknown): value is Errno {
  return typeof value === 'object' && value !== null && 'errno' in value && !Buffer.isBuffer(value);
}

export interface FileBackend {
  /**
   * The whole content of `path` as `caller` sees it, rendered at open and again for a re-read
   * from offset 0 on the same handle. `container` is set for the per-container copies under
   * /containers/<key>/: the content is that container's, whoever reads it.
   */
  read(path: ServedPath, caller: Caller, container?: string): Buffer | Errno;
  /** A write to a control file; returns the bytes accepted or an errno. */
  write(path: ServedPath, caller: Caller, data: Buffer, offset: number, container?: string): number | Errno;
  /** Called after every open/read/write with the outcome, for metrics (must be cheap). */
  observe?(path: ServedPath, result: string, seconds: number): void;
}

interface DirNode {
  kind: 'dir';
  ino: number;
  name: string;
  parent: number;
  children: Map<string, Node>;
}
interface FileNode {
  kind: 'file';
  ino: number;
  name: string;
  parent: number;
  path: ServedPath;
  writable: boolean;
  /** The container key of a per-container copy (under /containers/<key>/); undefined = shared. */
  container?: string;
  /**
   * A per-container file's size: the length of its latest content, the size the page-cache
   * store at open gave the inode. GETATTR says the same, or an fstat (mmap readers make one)
   * would set the size back to 0 and those readers would see an empty file.
   */
  sizeBytes?: number;
}
type Node = DirNode | FileNode;

interface OpenHandle {
  node: FileNode;
  /** Opened for reading: the native side holds its content (see read()). */
  readable: boolean;
  caller: Caller;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const O_ACCMODE = 3;
const O_WRONLY = 1;
const O_RDWR = 2;
const W_OK = 2;
const X_OK = 1;
/** SETATTR's to_set bits (libfuse's FUSE_SET_ATTR_*). */
const SET_ATTR_OWNERSHIP = (1 << 0) | (1 << 1) | (1 << 2); // mode, uid, gid
const SET_ATTR_SIZE = 1 << 3;
const SET_ATTR_TIMES = (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 10); // atime, mtime, *_now, ctime

/** Open handles allowed by default: ~100 bytes each once read, so 65536 cost a few MB. */
export const DEFAULT_MAX_OPEN_HANDLES = 65536;
/** onLimit is called at most this often while opens are refused. */
const LIMIT_REPORT_INTERVAL_MS = 10_000;

export interface FilesystemOptions {
  /** Past this many open files, OPEN answers ENFILE (default DEFAULT_MAX_OPEN_HANDLES). */
  maxOpenHandles?: number;
  /** Told how many opens were refused since its last call (at most every 10 s): a log line. */
  onLimit?: (refused: number) => void;
}

/**
 * Asked of native for every readable handle: a READ from offset 0 after the handle was read comes
 * to read(), which renders afresh, as the kernel's seq_file does for samplers (vmstat 1, top).
 */
const FRESH_ON_REWIND = true;

/** Names and attributes never change once created, so the kernel may cache them long. */
const STATIC_TIMEOUT_SEC = 3600;

/** The directory holding one subtree per attached container. */
export const CONTAINERS_DIR = 'containers';

/** The longest directory name Linux accepts (NAME_MAX). */
const NAME_MAX = 255;
/** Names of keys too long to percent-encode start with this ('%2F...' names never do). */
const HASHED_NAME_PREFIX = 'sha256-';

/**
 * A container key (a cgroup path such as /kubepods/burstable/pod1/abc) as one directory name.
 * Percent-encoding (encodeURIComponent): '/' becomes %2F so a key cannot split into several
 * directories or climb out with '..', the name is readable, and decodeURIComponent reverses it.
 * A key whose encoding exceeds NAME_MAX (deeply nested cgroups, e.g. kind nodes under the
 * systemd driver, reach ~240 bytes) gets `sha256-<hex of the key>` instead: still one safe name,
 * mapped back by the daemon's own table (the attach log line names both), and recomputed from
 * the container's cgroup when a restarted daemon repairs it.
 */
export function containerDirName(key: string): string {
  let name: string;
  try {
    name = encodeURIComponent(key);
  } catch {
    name = ''; // a lone surrogate (not valid UTF-16): hash it like a long key
  }
  if (name !== '' && Buffer.byteLength(name) <= NAME_MAX) return name;
  return HASHED_NAME_PREFIX + createHash('sha256').update(key).digest('hex');
}

/**
 * The mount's source (fsname, mountinfo's source field) names the mountpoint it was made for. A
 * daemon restarted on the same mountpoint recognises its predecessor's mounts in containers by
 * it, and leaves those of other isolfs instances (a second daemon, a benchmark, tests running
 * side by side) alone. A path that would need escaping in a mount option string is hashed.
 */
export function mountSourceName(mountpoint: string): string {
  if (/^[\w./-]+$/.test(mountpoint)) return `isolfs:${mountpoint}`;
  return `isolfs:sha256-${createHash('sha256').update(mountpoint).digest('hex').slice(0, 32)}`;
}

/** The path of a served file's per-container copy, relative to the mountpoint. */
export function containerFilePath(key: string, file: ServedPath): string {
  return `/${CONTAINERS_DIR}/${containerDirName(key)}${file}`;
}

export class IsolfsFilesystem {
  private readonly nodes = new Map<number, Node>();
  private readonly handles = new Map<number, OpenHandle>();
  private nextFh = 1;
  /** Inode numbers are never reused: the kernel may still hold a removed container's. */
  private nextIno = 2;
  private readonly containersDir: DirNode;
  /** Directory name under /containers -> container key (hashed names cannot be decoded). */
  private readonly containerKeysByName = new Map<string, string>();
  private session: NativeSession | null = null;
  private readonly mountTimeSec = Math.floor(Date.now() / 1000);
  private readonly maxOpenHandles: number;
  private refusedOpens = 0;
  private lastLimitReportMs = -Infinity;
  /** The one request object, refilled by native before each onRequest call. */
  private readonly request: FuseRequest;

  constructor(
    private readonly native: NativeAddon,
    private readonly backend: FileBackend,
    private readonly options: FilesystemOptions = {},
  ) {
    this.maxOpenHandles = options.maxOpenHandles ?? DEFAULT_MAX_OPEN_HANDLES;
    this.request = new FuseRequest(native.requestFields);
    const root: DirNode = { kind: 'dir', ino: 1, name: '', parent: 1, children: new Map() };
    this.nodes.set(1, root);
    for (const p of VIEW_PATHS) this.addFile(root, p, false);
    for (const p of CONTROL_PATHS) this.addFile(root, p, true);
    this.containersDir = this.ensureDir(root, CONTAINERS_DIR);
  }

  /**
   * Adds /containers/<key>/ with a copy of every served file (idempotent). Keys are cgroup
   * paths: anything else is refused (false).
   */
  addContainer(key: string): boolean {
    if (!key.startsWith('/')) return false;
    const name = containerDirName(key);
    if (this.containersDir.children.has(name)) return true;
    const dir = this.ensureDir(this.containersDir, name);
    for (const p of VIEW_PATHS) this.addFile(dir, p, false, key);
    for (const p of CONTROL_PATHS) this.addFile(dir, p, true, key);
    this.containerKeysByName.set(name, key);
    return true;
  }

  /** Removes a container's subtree (its cgroup is gone). Open handles keep the content they have. */
  removeContainer(key: string): void {
    const name = containerDirName(key);
    const dir = this.containersDir.children.get(name);
    if (!dir || dir.kind !== 'dir') return;
    this.containersDir.children.delete(name);
    this.containerKeysByName.delete(name);
    const forget = (node: Node): void => {
      this.nodes.delete(node.ino);
      if (node.kind === 'dir') for (const child of node.children.values()) forget(child);
    };
    forget(dir);
  }

  /** Keys of the containers that have a subtree. */
  containerKeys(): string[] {
    return [...this.containerKeysByName.values()];
  }

  mount(mountpoint: string, loop: LoopMode): void {
    // allow_other: containers read as any uid. No default_permissions: the control files do
    // their own checks (EPERM for non-root writers), which the kernel's mode check can't express.
    const options = `allow_other,fsname=${mountSourceName(mountpoint)},subtype=isolfs`;
    this.session = this.native.mount(mountpoint, options, loop, this.request.header, this.onRequest);
  }

  unmount(): void {
    if (this.session) {
      const session = this.session;
      this.session = null;
      this.native.unmount(session);
    }
  }

  get openHandles(): number {
    return this.handles.size;
  }

  private ensureDir(parent: DirNode, name: string): DirNode {
    const existing = parent.children.get(name);
    if (existing) {
      if (existing.kind !== 'dir') throw new Error(`layout conflict at ${name}`);
      return existing;
    }
    const dir: DirNode = { kind: 'dir', ino: this.nextIno++, name, parent: parent.ino, children: new Map() };
    this.nodes.set(dir.ino, dir);
    parent.children.set(name, dir);
    return dir;
  }

  private addFile(top: DirNode, filePath: ServedPath, writable: boolean, container?: string): void {
    const parts = filePath.split('/').filter(Boolean);
    let dir = top;
    for (const part of parts.slice(0, -1)) dir = this.ensureDir(dir, part);
    const name = parts[parts.length - 1];
    const file: FileNode = { kind: 'file', ino: this.nextIno++, name, parent: dir.ino, path: filePath, writable, container };
    this.nodes.set(file.ino, file);
    dir.children.set(name, file);
  }

  /** Shared files say 0: their content depends on the reader, and none is in their page cache. */
  private sizeOf(node: Node): number {
    return node.kind === 'file' ? node.sizeBytes ?? 0 : 0;
  }

  private modeOf(node: Node): number {
    if (node.kind === 'dir') return S_IFDIR | 0o555;
    return S_IFREG | (node.writable ? 0o644 : 0o444);
  }

  /** Arrow function: handed to native once, called for every request (see FuseRequest). */
  private readonly onRequest = (name: string | undefined, data: Buffer | undefined): void => {
    const req = this.request;
    req.name = name;
    req.data = data;
    const id = req.id;
    const ops = this.native.ops;
    try {
      switch (req.op) {
        case ops.lookup: return this.lookup(id, req.ino, name ?? '');
        case ops.getattr: return this.getattr(id, req.ino);
        case ops.setattr: return this.setattr(id, req.ino, req.flags, req.uid);
        case ops.access: return this.access(id, req.ino, req.flags, req.uid);
        case ops.opendir: return this.opendir(id, req.ino);
        case ops.readdir: return this.readdir(id, req.ino, req.offset, req.size);
        case ops.open: return this.open(id, req.ino, callerOf(req), req.flags);
        case ops.read: return this.read(id, req.fh, req.offset, req.size, callerOf(req));
        case ops.write: return this.write(id, req.fh, req.offset, data ?? EMPTY, callerOf(req));
        case ops.release: this.handles.delete(req.fh); return; // native has answered it (id -1)
        default: return this.native.replyErr(id, E.ENOSYS);
      }
    } catch {
      // A bug must cost one request, never the daemon. (If the id was already answered the
      // native side refuses the second answer with an exception, which we swallow here too.)
      try { this.native.replyErr(id, E.EIO); } catch { /* already answered */ }
    } finally {
      req.name = undefined;
      req.data = undefined;
    }
  };

  private lookup(id: number, parentIno: number, name: string): void {
    const parent = this.nodes.get(parentIno);
    const node = parent?.kind === 'dir' ? parent.children.get(name) : undefined;
    if (!node) return this.native.replyErr(id, E.ENOENT);
    this.native.replyEntry(id, node.ino, this.modeOf(node), node.kind === 'dir' ? 2 : 1, this.sizeOf(node), 0, 0,
      this.mountTimeSec, STATIC_TIMEOUT_SEC, STATIC_TIMEOUT_SEC);
  }

  private getattr(id: number, ino: number): void {
    const node = this.nodes.get(ino);
    if (!node) return this.native.replyErr(id, E.ENOENT);
    this.native.replyAttr(id, node.ino, this.modeOf(node), node.kind === 'dir' ? 2 : 1, this.sizeOf(node), 0, 0,
      this.mountTimeSec, STATIC_TIMEOUT_SEC);
  }

  /**
   * chmod, chown, truncate, touch: answered as procfs and sysctl files answer them, never as a
   * silent success. Truncating a control file is how `echo 1 > file` starts: a no-op for root.
   */
  private setattr(id: number, ino: number, toSet: number, uid: number): void {
    const node = this.nodes.get(ino);
    if (!node) return this.native.replyErr(id, E.ENOENT);
    if (toSet & SET_ATTR_OWNERSHIP) return this.native.replyErr(id, E.EPERM);
    if (toSet & SET_ATTR_SIZE) {
      if (node.kind !== 'file' || !node.writable) return this.native.replyErr(id, E.EACCES);
      if (uid !== 0) return this.native.replyErr(id, E.EACCES);
    }
    if ((toSet & SET_ATTR_TIMES) && uid !== 0) return this.native.replyErr(id, E.EPERM);
    this.getattr(id, ino);
  }

  /** access(2): what the modes say (0444 views, 0644 root-only control files, 0555 dirs). */
  private access(id: number, ino: number, mask: number, uid: number): void {
    const node = this.nodes.get(ino);
    if (!node) return this.native.replyErr(id, E.ENOENT);
    const writable = node.kind === 'file' && node.writable && uid === 0;
    if ((mask & W_OK) && !writable) return this.native.replyErr(id, E.EACCES);
    if ((mask & X_OK) && node.kind === 'file') return this.native.replyErr(id, E.EACCES);
    this.native.replyErr(id, 0);
  }

  private opendir(id: number, ino: number): void {
    const node = this.nodes.get(ino);
    if (!node) return this.native.replyErr(id, E.ENOENT);
    if (node.kind !== 'dir') return this.native.replyErr(id, E.ENOTDIR);
    this.native.replyOpen(id, 0, false, false, false);
  }

  private readdir(id: number, ino: number, offset: number, size: number): void {
    const node = this.nodes.get(ino);
    if (!node || node.kind !== 'dir') return this.native.replyErr(id, E.ENOTDIR);
    const names = ['.', '..'];
    const inos = [node.ino, node.parent];
    const modes = [S_IFDIR, S_IFDIR];
    for (const child of node.children.values()) {
      names.push(child.name);
      inos.push(child.ino);
      modes.push(this.modeOf(child) & 0o170000);
    }
    // The offset is the index of the next entry: at or past the end (lseek to 2^62) is EOF.
    if (!(offset >= 0 && offset < names.length)) return this.native.replyDir(id, [], [], [], 0, size);
    this.native.replyDir(id, names, inos, modes, offset, size);
  }

  private open(id: number, ino: number, caller: Caller, flags: number): void {
    const node = this.nodes.get(ino);
    if (!node) return this.native.replyErr(id, E.ENOENT);
    if (node.kind === 'dir') return this.native.replyErr(id, E.EISDIR);
    const access = flags & O_ACCMODE;
    const writing = access === O_WRONLY || access === O_RDWR;
    if (writing && !node.writable) return this.native.replyErr(id, E.EACCES);
    if (this.handles.size >= this.maxOpenHandles) return this.refuseOpen(id);
    let content: Buffer | null = null;
    if (access !== O_WRONLY) {
      const result = this.render(node, caller);
      if (isErrno(result)) return this.native.replyErr(id, result.errno);
      content = result;
    }
    const fh = this.nextFh++;
    this.handles.set(fh, { node, readable: content !== null, caller });
    // Direct I/O: read(2) comes to us for every reader. splice, sendfile (busybox cat) and mmap
    // read through the page cache instead, up to the inode's size (0 here), so they see an empty
    // file. A shared inode's content depends on the reader, so nothing of it ever goes into its
    // page cache: those readers get an empty file there (attached per-container files are the
    // way for them). A per-container inode has one content for every reader: native's notifier
    // thread stores it first, which sets the size (the pages are dropped again when the open
    // completes, no keep_cache), so the reader's own READs fetch its bytes.
    const storeFirst = content !== null && content.length > 0 && node.container !== undefined;
    if (storeFirst) node.sizeBytes = content!.length;
    this.native.replyOpen(id, fh, true, false, false, content ?? undefined, storeFirst, FRESH_ON_REWIND);
  }

  /** ENFILE past the cap on open handles, told to onLimit at most every 10 s. */
  private refuseOpen(id: number): void {
    this.refusedOpens++;
    const nowMs = Date.now();
    if (this.options.onLimit && nowMs - this.lastLimitReportMs >= LIMIT_REPORT_INTERVAL_MS) {
      this.lastLimitReportMs = nowMs;
      const refused = this.refusedOpens;
      this.refusedOpens = 0;
      this.options.onLimit(refused);
    }
    this.native.replyErr(id, E.ENFILE);
  }

  /** The backend's bytes for `node` as `caller` sees them, timed for metrics. */
  private render(node: FileNode, caller: Caller): Buffer | Errno {
    const started = process.hrtime.bigint();
    const result = this.backend.read(node.path, caller, node.container);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.backend.observe?.(node.path, isErrno(result) ? `errno-${result.errno}` : 'ok', seconds);
    return result;
  }

  private read(id: number, fh: number, offset: number, size: number, caller: Caller): void {
    const handle = this.handles.get(fh);
    if (!handle || !handle.readable) return this.native.replyErr(id, E.EBADF);
    // The native side answers a handle's READs from the content captured at open. The ones it
    // passes on are rewinds to offset 0 (we asked for them: FRESH_ON_REWIND) and reads of bytes
    // it no longer holds (it frees its copy once all was delivered). Tools that sample
    // (vmstat 1, top, free -s, procps 4's library) open a /proc file once and lseek(0) + read it
    // every interval, and the kernel's seq_file renders afresh on every read from offset 0, so we
    // do too, for whoever reads now (pid 0 if not visible to us: the opener then), and hand
    // native the new content for the READs that follow.
    const fresh = this.render(handle.node, caller.pid !== 0 ? caller : handle.caller);
    if (isErrno(fresh)) return this.native.replyErr(id, fresh.errno);
    if (this.session) this.native.setContent(this.session, fh, fresh);
    if (offset >= fresh.length) return this.native.replyBuf(id, EMPTY);
    this.native.replyBuf(id, offset === 0 && size >= fresh.length ? fresh : fresh.subarray(offset, offset + size));
  }


  private write(id: number, fh: number, offset: number, data: Buffer, caller: Caller): void {
    const handle = this.handles.get(fh);
    if (!handle) return this.native.replyErr(id, E.EBADF);
    if (!isControlPath(handle.node.path)) return this.native.replyErr(id, E.EACCES);
    const result = this.backend.write(handle.node.path, caller, data, offset, handle.node.container);
    if (isErrno(result)) {
      this.backend.observe?.(handle.node.path, `errno-${result.errno}`, 0);
      return this.native.replyErr(id, result.errno);
    }
    this.backend.observe?.(handle.node.path, 'write', 0);
    this.native.replyWrite(id, result);
  }
}

const EMPTY = Buffer.alloc(0);

/** A copy of the request's caller: kept past the request (an open handle keeps its opener). */
function callerOf(req: FuseRequest): Caller {
  return { pid: req.pid, uid: req.uid, gid: req.gid };
}
