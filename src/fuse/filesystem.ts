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
import type { FileBackend } from './fileBackend';
import { InodeTable, S_IFDIR, S_IFMT, modeOf, nlinkOf, sizeOf } from './inodes';
import type { ServedPath } from './layout';
import { FuseRequest, type LoopMode, type NativeAddon, type NativeSession } from './native';
import { OpenFiles, REPLIED, type OpenFilesOptions } from './openFiles';

const { errno: E } = osConstants;

export type FilesystemOptions = OpenFilesOptions;

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
  private readonly inodes = new InodeTable(CONTAINERS_DIR);
  private readonly files: OpenFiles;
  private session: NativeSession | null = null;
  private readonly mountTimeSec = Math.floor(Date.now() / 1000);
  /** The one request object, refilled by native before each onRequest call. */
  private readonly request: FuseRequest;

  constructor(private readonly native: NativeAddon, backend: FileBackend, options: FilesystemOptions = {}) {
    this.files = new OpenFiles(native, backend, options);
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
    this.inodes.removeContainer(containerDirName(key));
  }

  /** Keys of the containers that have a subtree. */
  containerKeys(): string[] {
    return this.inodes.containerKeys();
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
      case ops.read: return this.files.read(req, this.session);
      case ops.write: return this.files.write(req);
      case ops.release: this.files.release(req.fh); return REPLIED; // native has answered it (id -1)
      default: return E.ENOSYS;
    }
  }

  private lookup(req: FuseRequest): number {
    const parent = this.inodes.get(req.ino);
    const node = parent?.kind === 'dir' ? parent.children.get(req.name ?? '') : undefined;
    if (!node) return E.ENOENT;
    this.native.replyEntry(req.id, node.ino, modeOf(node), nlinkOf(node), sizeOf(node), 0, 0,
      this.mountTimeSec, STATIC_TIMEOUT_SEC, STATIC_TIMEOUT_SEC);
    return REPLIED;
  }

  private getattr(req: FuseRequest): number {
    const node = this.inodes.get(req.ino);
    if (!node) return E.ENOENT;
    this.native.replyAttr(req.id, node.ino, modeOf(node), nlinkOf(node), sizeOf(node), 0, 0,
      this.mountTimeSec, STATIC_TIMEOUT_SEC);
    return REPLIED;
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
      if (req.uid !== 0) return E.EACCES;
    }
    if ((toSet & SET_ATTR_TIMES) && req.uid !== 0) return E.EPERM;
    return this.getattr(req);
  }

  /** access(2): what the modes say (0444 views, 0644 root-only control files, 0555 dirs). */
  private access(req: FuseRequest): number {
    const node = this.inodes.get(req.ino);
    if (!node) return E.ENOENT;
    const mask = req.flags;
    const writable = node.kind === 'file' && node.writable && req.uid === 0;
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
    for (const child of node.children.values()) {
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
