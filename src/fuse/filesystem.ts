/**
 * The FUSE side of isolfs: each request dispatched to its operation, over the inode table
 * (inodes.ts) and the open files (openFiles.ts). It knows nothing of cgroups or views: open files
 * ask a `FileBackend` for bytes (at open, and for a re-read from offset 0) and hand it writes,
 * together with who the caller is (the FUSE request header's pid/uid/gid).
 *
 * Two rules (README, "Design rules"): content that depends on the reader never goes into a page
 * cache another reader can see (shared files: direct I/O, size 0); no thread that serves requests
 * waits on the kernel for what only it can provide (page-cache stores run on native's notifier).
 */
import { createHash } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { CachedFiles, PAGE_CACHE_ATTR_TIMEOUT_SEC } from './cachedFiles';
import type { FileBackend } from './fileBackend';
import { ReaderCpuDirs, withCpuTree, type CpuTreeLayout } from './cpuDirs';
import { InodeTable, S_IFDIR, S_IFMT, modeOf, nlinkOf, sizeOf, type Node, type TreeLayout } from './inodes';
import { CONTROL_PATHS, CPU_TREE_DIR, PRESSURE_PATHS, VIEW_PATHS, isPressurePath, type ServedPath } from './layout';
import { FuseRequest, type LoopMode, type NativeAddon, type NativeSession } from './native';
import { OpenFiles, REPLIED, type OpenFilesOptions } from './openFiles';

const { errno: E } = osConstants;

/**
 * The two trees isolfs mounts:
 * - main: the shared files, whose content depends on the reader (per-reader render at OPEN,
 *   direct I/O), and per container its control files;
 * - container-views: per container its views, one content for every reader of an inode, kept in
 *   the kernel's page cache (a connection of its own: OPEN answered ENOSYS makes the kernel stop
 *   sending OPEN for the whole connection, which the main tree's per-reader files need).
 */
export type TreeKind = 'main' | 'container-views';

const LAYOUTS: Record<TreeKind, TreeLayout> = {
  main: { shared: [...VIEW_PATHS, ...CONTROL_PATHS, ...PRESSURE_PATHS], perContainer: [...CONTROL_PATHS, ...PRESSURE_PATHS] },
  'container-views': { shared: [], perContainer: VIEW_PATHS },
};

/** Which tree a served file's per-container copy is in. */
export function treeOfContainerFile(file: ServedPath): TreeKind {
  return LAYOUTS.main.perContainer.includes(file) ? 'main' : 'container-views';
}

export interface FilesystemOptions extends OpenFilesOptions {
  /** Default main. */
  tree?: TreeKind;
  /** The main tree's /sys/devices/system/cpu beside `online` (see CpuTreeLayout). */
  cpuTree?: CpuTreeLayout;
}

const O_ACCMODE = 3;
const O_WRONLY = 1;
const O_RDWR = 2;
const W_OK = 2;
const X_OK = 1;
/** SETATTR's to_set bits (libfuse's FUSE_SET_ATTR_*). */
const SET_ATTR_OWNERSHIP = (1 << 0) | (1 << 1) | (1 << 2); // mode, uid, gid
const SET_ATTR_SIZE = 1 << 3;
const SET_ATTR_TIMES = (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 10); // atime, mtime, *_now, ctime

/** Names and attributes never change once created, so the kernel may cache them long. */
const STATIC_TIMEOUT_SEC = 3600;
/**
 * A name in a per-container subtree is not cached at all: the subtree goes with its container
 * and a new one may come under the same name (a cgroup path reused: docker stop and start,
 * systemd units, LXC), and a cached name would lead the attach helper to the old, removed
 * inode (ENOENT for an hour). Those names are looked up only to attach and repair: cheap.
 */
const CONTAINER_ENTRY_TIMEOUT_SEC = 0;

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

/**
 * Where the container-views tree of the daemon serving `mountpoint` is mounted unless told
 * otherwise (--views-mountpoint): in the daemon's own runtime directory, since only the daemon
 * and its attach helper (which opens sources before entering a container) use it.
 */
export function defaultViewsMountpoint(mountpoint: string): string {
  return `/run/isolfs/views-${createHash('sha256').update(mountpoint).digest('hex').slice(0, 16)}`;
}

/** The path of a served file's per-container copy, relative to the mountpoint of its tree. */
export function containerFilePath(key: string, file: ServedPath): string {
  return `/${CONTAINERS_DIR}/${containerDirName(key)}${file}`;
}

export class IsolfsFilesystem {
  private readonly inodes: InodeTable;
  private readonly cpuDirs: ReaderCpuDirs;
  readonly tree: TreeKind;
  private readonly files: OpenFiles;
  /** The container-views tree's files (null in the main tree). */
  private readonly cached: CachedFiles | null;
  private session: NativeSession | null = null;
  private readonly mountTimeSec = Math.floor(Date.now() / 1000);
  /** The one request object, refilled by native before each onRequest call. */
  private readonly request: FuseRequest;

  constructor(private readonly native: NativeAddon, backend: FileBackend, options: FilesystemOptions = {}) {
    this.tree = options.tree ?? 'main';
    const cpuTree = this.tree === 'main' ? options.cpuTree : undefined;
    this.inodes = new InodeTable(CONTAINERS_DIR, withCpuTree(LAYOUTS[this.tree], cpuTree));
    if (cpuTree) this.inodes.markCpuDirs(CPU_TREE_DIR, cpuTree.hostCpuIds);
    this.cpuDirs = new ReaderCpuDirs(backend);
    this.files = new OpenFiles(native, backend, options);
    this.cached = this.tree === 'container-views' ? new CachedFiles(native, backend) : null;
    this.request = new FuseRequest(native.requestFields);
  }

  /**
   * Adds /containers/<key>/ with a copy of every served file (idempotent). Keys are cgroup
   * paths: anything else is refused (false).
   */
  addContainer(key: string): boolean {
    if (!key.startsWith('/')) return false;
    this.inodes.addContainer(key, containerDirName(key));
    return true;
  }

  /** Removes a container's subtree (its cgroup is gone). Open handles keep the content they have. */
  removeContainer(key: string): void {
    const files = this.inodes.removeContainer(containerDirName(key));
    if (this.cached && this.session) this.cached.forget(this.session, files);
  }

  /** Keys of the containers that have a subtree. */
  containerKeys(): string[] {
    return this.inodes.containerKeys();
  }

  /**
   * Something every per-container file may depend on changed (a switch): in the container-views
   * tree, the kernel asks each one's attributes again at its next read, which brings it up to
   * date at once instead of within PAGE_CACHE_ATTR_TIMEOUT_SEC.
   */
  refreshContainerFiles(): void {
    const session = this.session;
    if (!(this.cached && session)) return;
    for (const node of this.inodes.containerFiles()) {
      node.versionAtMs = undefined; // a switch is no reason to wait out a version's 50 ms
      this.native.invalidateAttributes(session, node.ino);
    }
  }

  /**
   * `sourceFor`: the mountpoint the mount's source names (mountSourceName): the main tree's, for
   * both trees, so a restarted daemon knows its predecessor's mounts of either.
   */
  mount(mountpoint: string, loop: LoopMode, sourceFor: string = mountpoint): void {
    // allow_other: containers read as any uid. The main tree has no default_permissions: its
    // control files do their own checks (EPERM for non-root writers), which the kernel's mode
    // check can't express. The container-views tree is read-only with the kernel checking modes:
    // a write into a page-cache file would change the cached bytes before we could refuse it.
    const common = `allow_other,fsname=${mountSourceName(sourceFor)},subtype=isolfs`;
    const options = this.cached ? `${common},ro,default_permissions` : common;
    this.session = this.native.mount(mountpoint, options, loop, this.request.header, this.onRequest, this.cached !== null);
  }

  unmount(): void {
    const session = this.session;
    this.session = null;
    if (session) this.native.unmount(session);
  }

  get openHandles(): number {
    return this.files.count;
  }

  /** Arrow function: handed to native once, called for every request (see FuseRequest). */
  private readonly onRequest = (name: string | undefined, data: Buffer | undefined): void => {
    const req = this.request;
    req.name = name;
    req.data = data;
    const id = req.id;
    try {
      const errno = this.dispatch(req);
      if (errno !== REPLIED) this.native.replyErr(id, errno);
    } catch {
      // A bug must cost one request, never the daemon. (If the id was already answered the
      // native side refuses the second answer with an exception, which we swallow here too.)
      try { this.native.replyErr(id, E.EIO); } catch { /* already answered */ }
    } finally {
      req.name = undefined;
      req.data = undefined;
    }
  };

  /** Runs the request's operation; each answers it (REPLIED) or returns the errno to answer. */
  private dispatch(req: FuseRequest): number {
    const ops = this.native.ops;
    switch (req.op) {
      case ops.lookup: return this.lookup(req);
      case ops.getattr: return this.getattr(req);
      case ops.setattr: return this.setattr(req);
      case ops.access: return this.access(req);
      case ops.opendir: return this.opendir(req);
      case ops.readdir: return this.readdir(req);
      case ops.open: return this.open(req);
      case ops.read: return this.read(req);
      case ops.write: return this.files.write(req, this.session);
      case ops.release: this.files.release(req.fh, this.session); return REPLIED; // native has answered it (id -1)
      case ops.poll: return this.files.poll(req, this.session); // (a page-cache tree's: native answers ENOSYS)
      default: return E.ENOSYS;
    }
  }

  private lookup(req: FuseRequest): number {
    const parent = this.inodes.get(req.ino);
    const node = parent?.kind === 'dir' ? parent.children.get(req.name ?? '') : undefined;
    if (!node) return E.ENOENT;
    const hidden = this.cpuDirs.lookupErrno(req, node);
    if (hidden !== 0) return hidden;
    const attr = this.attributes(node);
    if (typeof attr === 'number') return attr;
    // A cpuN name depends on the reader: never cached (see cpuDirs.ts).
    const entryTimeoutSec = node.container === undefined && !(node.kind === 'dir' && node.cpu) ? STATIC_TIMEOUT_SEC : CONTAINER_ENTRY_TIMEOUT_SEC;
    this.native.replyEntry(req.id, node.ino, modeOf(node), nlinkOf(node), attr.sizeBytes, 0, 0,
      this.mountTimeSec, entryTimeoutSec, attr.timeoutSec, attr.mtimeNsec);
    return REPLIED;
  }

  private getattr(req: FuseRequest): number {
    const node = this.inodes.get(req.ino);
    if (!node) return E.ENOENT;
    const attr = this.attributes(node);
    if (typeof attr === 'number') return attr;
    this.native.replyAttr(req.id, node.ino, modeOf(node), nlinkOf(node), attr.sizeBytes, 0, 0,
      this.mountTimeSec, attr.timeoutSec, attr.mtimeNsec);
    return REPLIED;
  }

  /**
   * Size, mtime and how long they hold. A page-cache file's are brought up to date first (its
   * content may have changed); everything else's never change.
   */
  private attributes(node: Node): { sizeBytes: number; mtimeNsec: number; timeoutSec: number } | number {
    if (node.kind === 'file' && this.cached && this.session) {
      const attr = this.cached.refresh(this.session, node);
      if (typeof attr === 'number') return attr;
      return { ...attr, timeoutSec: PAGE_CACHE_ATTR_TIMEOUT_SEC };
    }
    return { sizeBytes: sizeOf(node), mtimeNsec: 0, timeoutSec: STATIC_TIMEOUT_SEC };
  }

  /**
   * chmod, chown, truncate, touch: answered as procfs and sysctl files answer them, never as a
   * silent success. Truncating a control file is how `echo 1 > file` starts: a no-op for root.
   */
  private setattr(req: FuseRequest): number {
    const node = this.inodes.get(req.ino);
    if (!node) return E.ENOENT;
    const toSet = req.flags;
    if (toSet & SET_ATTR_OWNERSHIP) return E.EPERM;
    if (toSet & SET_ATTR_SIZE) {
      if (node.kind !== 'file' || !node.writable) return E.EACCES;
      if (req.uid !== 0 && !isPressurePath(node.path)) return E.EACCES;
    }
    if ((toSet & SET_ATTR_TIMES) && req.uid !== 0) return E.EPERM;
    return this.getattr(req);
  }

  /** access(2): what the modes say (0444 views, 0644 root-only control files, 0555 dirs). */
  private access(req: FuseRequest): number {
    const node = this.inodes.get(req.ino);
    if (!node) return E.ENOENT;
    const mask = req.flags;
    const writable = node.kind === 'file' && node.writable && (req.uid === 0 || isPressurePath(node.path));
    if ((mask & W_OK) && !writable) return E.EACCES;
    if ((mask & X_OK) && node.kind === 'file') return E.EACCES;
    return 0; // success: fuse_reply_err with 0
  }

  private opendir(req: FuseRequest): number {
    const node = this.inodes.get(req.ino);
    if (!node) return E.ENOENT;
    if (node.kind !== 'dir') return E.ENOTDIR;
    this.native.replyOpen(req.id, 0, false, false, false);
    return REPLIED;
  }

  private readdir(req: FuseRequest): number {
    const node = this.inodes.get(req.ino);
    if (node?.kind !== 'dir') return E.ENOTDIR;
    const names = ['.', '..'];
    const inos = [node.ino, node.parent];
    const modes = [S_IFDIR, S_IFDIR];
    const listed = this.cpuDirs.listFilter(req);
    for (const child of node.children.values()) {
      if (!listed(child)) continue;
      names.push(child.name);
      inos.push(child.ino);
      modes.push(modeOf(child) & S_IFMT);
    }
    // The offset is the index of the next entry: at or past the end (lseek to 2^62) is EOF.
    const offset = req.offset;
    if (offset >= 0 && offset < names.length) this.native.replyDir(req.id, names, inos, modes, offset, req.size);
    else this.native.replyDir(req.id, [], [], [], 0, req.size);
    return REPLIED;
  }

  private read(req: FuseRequest): number {
    if (!this.cached) return this.files.read(req, this.session);
    const node = this.inodes.get(req.ino);
    if (node?.kind !== 'file' || !this.session) return E.ENOENT;
    return this.cached.read(req, this.session, node);
  }

  private open(req: FuseRequest): number {
    const node = this.inodes.get(req.ino);
    if (!node) return E.ENOENT;
    if (node.kind === 'dir') return E.EISDIR;
    const access = req.flags & O_ACCMODE;
    const writing = access === O_WRONLY || access === O_RDWR;
    if (writing && !node.writable) return E.EACCES;
    return this.files.open(req, node, access !== O_WRONLY);
  }
}
