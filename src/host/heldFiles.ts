// cgroup files kept open between reads. Opening a cgroup file costs the kernel a path walk and a
// seq_file set-up each time (12-37 µs measured here, against 2-11 µs to read the same file again
// through an open fd), and a node of 500 read containers renders ~1,500 times a second, each
// render reading several of its cgroup's files. A kept fd is read again from offset 0, where the
// kernel regenerates the content as at a fresh open.
//
// Only kernfs files (cgroupfs, sysfs) are kept: when their cgroup is removed, or a v2 controller
// is disabled, a kept fd answers ENODEV, and a cgroup recreated under the same path is another
// file. A cgroup v1 directory can also be renamed (cgroup1_rename, by whoever may write its
// parent: a delegated subtree) and another made under its old name, while the kept fd still reads
// the renamed one; so a kept fd's directory path is looked at again (one stat, dev and inode
// compared) when it was last looked at HELD_FILE_CHECK_MS ago, and the files of a path that names
// another directory now are opened again. One stat per directory, not per file: a cgroup file
// cannot be renamed or replaced on its own, only with its directory (a container's memory
// directory alone holds ~4 of the files a render reads). A failed read through a kept fd closes it and opens the path again. Files elsewhere
// (test fixtures, tmpfs) are opened per read.
//
// Bounded: at most `maxHeld` fds (a delegated subtree can make 100k cgroups); when full, the
// least recently read one is closed only if unread for HELD_FILE_IDLE_MS, else the new file is
// read without being kept (so a working set larger than the bound keeps what it holds instead of
// thrashing). The registry's drop hook closes a container's files (release) when it goes.
import fs from 'node:fs';
import { DEFAULT_MAX_BYTES, FileReadError, isReadErrorCode, openRegular, rereadKernfsPrefix } from './boundedRead';

/** Default bound: ~6 files per container of a 500-container node, with room. Each kept fd also
 *  holds the kernel's seq_file buffer (4.4 KiB measured) until closed. */
export const DEFAULT_MAX_HELD_FILES = 4096;
/** Never more than this share of the process's fd limit: the rest is for FUSE, sockets, the attach helper. */
const FD_LIMIT_SHARE = 4;
/** A kept fd unread this long may be closed for another file. */
export const HELD_FILE_IDLE_MS = 10_000;
/** A kept fd's path is checked to name the same file at most this often (as ancestors' limits are reused). */
export const HELD_FILE_CHECK_MS = 1000;

/** statfs f_type of the file systems whose files are kept: cgroup v1, cgroup v2, sysfs. */
const KERNFS_MAGICS: ReadonlySet<number> = new Set([0x27e0eb, 0x63677270, 0x62656572]);

interface Held {
  fd: number;
  readAtMs: number;
  /** The directory the file was opened in (stat before the open). */
  dirDev: number;
  dirIno: number;
}

/** The directory a path named when last looked at. */
interface DirSeen {
  dev: number;
  ino: number;
  checkedAtMs: number;
}

export interface HeldFilesOptions {
  maxHeld?: number;
  nowMs?: () => number;
  /** Whether the file at `path` may be kept open (default: it is on a kernfs file system). */
  holdable?: (path: string) => boolean;
}

export class HeldFiles {
  /** By path, least recently read first (a read moves its entry to the end). */
  private readonly held = new Map<string, Held>();
  /** Directories already asked whether their files may be kept (bounded: cleared when large). */
  private readonly holdableDirs = new Map<string, boolean>();
  /** Directories of kept files, as last looked at (bounded: cleared when large). */
  private readonly dirs = new Map<string, DirSeen>();
  private readonly maxHeld: number;
  private readonly nowMs: () => number;
  private readonly holdable: (path: string) => boolean;

  constructor(options: HeldFilesOptions = {}) {
    this.maxHeld = options.maxHeld ?? defaultMaxHeld();
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.holdable = options.holdable ?? onKernfs;
    if (!(this.maxHeld >= 0)) throw new RangeError(`maxHeld must be >= 0: ${this.maxHeld}`);
  }

  /** The file's text (UTF-8), at most `maxBytes` (longer: FileReadError TOO_LARGE), as readBoundedText. */
  readText(dir: string, file: string, maxBytes = DEFAULT_MAX_BYTES): string {
    const path = `${dir}/${file}`;
    const nowMs = this.nowMs();
    const kept = this.held.get(path);
    if (kept !== undefined) {
      this.held.delete(path);
      try {
        const seen = this.dirNow(dir, nowMs);
        if (seen === null || seen.dev !== kept.dirDev || seen.ino !== kept.dirIno) throw new Error('renamed');
        const text = textOf(kept.fd, dir, file, maxBytes);
        kept.readAtMs = nowMs;
        this.held.set(path, kept);
        return text;
      } catch {
        fs.closeSync(kept.fd); // its cgroup went (ENODEV) or was renamed, or the file changed kind: open it again
      }
    }
    // Looked at before the open: a directory swapped in between is seen as changed at the next look.
    const seen = this.holdableDir(dir, path) ? this.dirNow(dir, nowMs) : null;
    const fd = this.open(dir, file);
    let text: string;
    try {
      text = textOf(fd, dir, file, maxBytes);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    if (seen !== null && this.makeRoom(nowMs)) {
      this.held.set(path, { fd, readAtMs: nowMs, dirDev: seen.dev, dirIno: seen.ino });
    } else {
      fs.closeSync(fd);
    }
    return text;
  }

  /** Closes the kept files directly in these directories (a container's cgroup dirs, when it goes). */
  release(dirs: Iterable<string>): void {
    const gone = new Set(dirs);
    if (gone.size === 0) return;
    for (const dir of gone) this.dirs.delete(dir);
    for (const [path, kept] of this.held) {
      if (!gone.has(path.slice(0, path.lastIndexOf('/')))) continue;
      this.held.delete(path);
      fs.closeSync(kept.fd);
    }
  }

  /** Closes every kept file. */
  clear(): void {
    for (const kept of this.held.values()) fs.closeSync(kept.fd);
    this.held.clear();
    this.holdableDirs.clear();
    this.dirs.clear();
  }

  get size(): number {
    return this.held.size;
  }

  private open(dir: string, file: string): number {
    try {
      return openRegular(dir, file);
    } catch (err) {
      // Out of fds: give back every kept one before the process fails elsewhere, and try once more.
      if (!isReadErrorCode(err, 'EMFILE', 'ENFILE') || this.held.size === 0) throw err;
      this.clear();
      return openRegular(dir, file);
    }
  }

  /** What `dir` names, looked at again when last looked at HELD_FILE_CHECK_MS ago; null when it is gone. */
  private dirNow(dir: string, nowMs: number): DirSeen | null {
    const known = this.dirs.get(dir);
    if (known !== undefined && nowMs - known.checkedAtMs < HELD_FILE_CHECK_MS && nowMs >= known.checkedAtMs) return known;
    const stat = fs.statSync(dir, { throwIfNoEntry: false });
    if (stat === undefined) {
      this.dirs.delete(dir);
      return null;
    }
    if (this.dirs.size >= this.maxHeld) this.dirs.clear();
    const seen = { dev: stat.dev, ino: stat.ino, checkedAtMs: nowMs };
    this.dirs.set(dir, seen);
    return seen;
  }

  private holdableDir(dir: string, path: string): boolean {
    if (this.maxHeld === 0) return false;
    let holdable = this.holdableDirs.get(dir);
    if (holdable === undefined) {
      holdable = this.holdable(path);
      if (this.holdableDirs.size >= this.maxHeld) this.holdableDirs.clear();
      this.holdableDirs.set(dir, holdable);
    }
    return holdable;
  }

  /** Whether a new file may be kept: below the bound, or the least recently read one is idle (closed). */
  private makeRoom(nowMs: number): boolean {
    if (this.held.size < this.maxHeld) return true;
    const oldest = this.held.entries().next();
    if (oldest.done === true) return false;
    const [path, kept] = oldest.value;
    const idle = nowMs - kept.readAtMs >= HELD_FILE_IDLE_MS || nowMs < kept.readAtMs;
    if (!idle) return false;
    this.held.delete(path);
    fs.closeSync(kept.fd);
    return true;
  }
}

function textOf(fd: number, dir: string, file: string, maxBytes: number): string {
  // Kept files are kernfs files (onKernfs), whose short read is the end (rereadPrefix): one
  // pread per read instead of two. (Files of tests' own holdable() are regular files: the same.)
  const { bytes, truncated } = rereadKernfsPrefix(fd, dir, file, maxBytes);
  if (truncated) throw new FileReadError(dir, file, 'TOO_LARGE', `larger than ${maxBytes} bytes`);
  return bytes.toString('utf8');
}

/** DEFAULT_MAX_HELD_FILES, at most a quarter of the fd limit. */
export function defaultMaxHeld(limitsText?: string): number {
  return shareOfFdLimit(DEFAULT_MAX_HELD_FILES, FD_LIMIT_SHARE, limitsText);
}

/** `cap`, at most 1/`share` of the process's fd limit (Node raises the soft limit to the hard one
 *  at start; /proc/self/limits says what it is). */
export function shareOfFdLimit(cap: number, share: number, limitsText?: string): number {
  let text = limitsText;
  try {
    text ??= fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return Math.floor(1024 / share); // limit unknown: assume the smallest common one
  }
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(text)?.[1];
  if (soft === undefined) return Math.floor(1024 / share);
  if (soft === 'unlimited') return cap;
  return Math.min(cap, Math.floor(Number(soft) / share));
}

function onKernfs(path: string): boolean {
  try {
    return KERNFS_MAGICS.has(Number(fs.statfsSync(path).type));
  } catch {
    return false;
  }
}

/** The daemon's cgroup files kept open (cgroup/parse.ts reads every cgroup file through it). */
export const heldCgroupFiles = new HeldFiles();
