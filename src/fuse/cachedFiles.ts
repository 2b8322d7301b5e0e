/**
 * Files whose content the kernel keeps in its page cache: the per-container views of the
 * container-views tree (one content for every reader of an inode). The kernel reads them at
 * page-cache speed and asks us only for attributes once those expire (GETATTR, here) and for
 * pages it does not have (READ, answered by native from the inode's content). Content is brought
 * up to date at GETATTR, so its cost follows reads: a file nobody reads costs nothing.
 */
import { constants as osConstants } from 'node:os';
import { isErrno, type FileBackend, type VersionedContent } from './fileBackend';
import type { FileNode } from './inodes';
import type { FuseRequest, NativeAddon, NativeSession } from './native';
import { REPLIED } from './openFiles';

/**
 * How long the kernel may use a file's attributes (and so its pages) before asking again. With
 * a version kept at least as long (below), a reader is at most 100 ms behind the container (the
 * kernel regenerates /proc on every read; programs sampling every second or faster must see each
 * second's change). Each read file then costs at most 20 GETATTRs a second, only while read.
 */
export const PAGE_CACHE_ATTR_TIMEOUT_SEC = 0.05;

/**
 * A file's version is kept at least this long. When attributes expire, each reader asks its own
 * GETATTR or LOOKUP, and the kernel applies the first answer it processes: answers of one burst
 * must carry the same version, or pages of one are read against the size of another (measured).
 */
const MIN_VERSION_MS = PAGE_CACHE_ATTR_TIMEOUT_SEC * 1000;

/** What GETATTR and LOOKUP report of a cached file. */
export interface CachedAttributes {
  sizeBytes: number;
  mtimeNsec: number;
}

const NSEC_PER_SEC = 1_000_000_000;

export class CachedFiles {
  constructor(
    private readonly native: NativeAddon,
    private readonly backend: FileBackend,
  ) {}

  /**
   * Brings `node`'s content up to date and says what GETATTR answers. A new version gets a new
   * mtime: native serves it from the reply that carries it on (see setInodeContent), and with
   * FUSE_CAP_AUTO_INVAL_DATA the kernel drops the inode's pages when it applies it.
   */
  refresh(session: NativeSession, node: FileNode): CachedAttributes | number {
    const nowMs = performance.now();
    const kept = node.version !== undefined && nowMs - (node.versionAtMs ?? 0) < MIN_VERSION_MS;
    if (!kept) {
      const current = this.current(session, node, nowMs);
      if (typeof current === 'number') return current;
    }
    return { sizeBytes: node.sizeBytes ?? 0, mtimeNsec: node.mtimeNsec ?? 0 };
  }

  /**
   * What LOOKUP answers: the version native holds, valid 0 s, nothing rendered; the kernel asks
   * GETATTR (which renders) before it reads. Lookups come from attach and repair (open_tree of 14
   * sources per container: rendering each kept the main thread of a node of 500 containers busy
   * for seconds), not from readers inside a container (a bind's root is never looked up).
   */
  static atLookup(node: FileNode): CachedAttributes & { timeoutSec: number } {
    return { sizeBytes: node.sizeBytes ?? 0, mtimeNsec: node.mtimeNsec ?? 0, timeoutSec: 0 };
  }

  /**
   * A READ native could not answer: it holds no content for the inode (none was set yet, or it
   * was dropped). The current content at the offset, which native serves from now on.
   */
  read(req: FuseRequest, session: NativeSession, node: FileNode): number {
    const current = this.current(session, node, performance.now());
    if (typeof current === 'number') return current;
    const { bytes } = current;
    const offset = req.offset;
    this.native.replyBuf(req.id, offset >= bytes.length ? EMPTY : bytes.subarray(offset, offset + req.size));
    return REPLIED;
  }

  /** The inodes of a removed subtree: native forgets their content. */
  forget(session: NativeSession, nodes: readonly FileNode[]): void {
    for (const node of nodes) this.native.dropInodeContent(session, node.ino);
  }

  /** The container's file now; a new version goes to native and gets a new mtime. */
  private current(session: NativeSession, node: FileNode, nowMs: number): VersionedContent | number {
    const { container } = node;
    if (container === undefined) return osConstants.errno.ENOENT; // not in this tree: never happens
    const current = this.backend.currentContent({ file: node.path, container });
    if (isErrno(current)) return current.errno;
    if (current.version !== node.version) {
      this.native.setInodeContent(session, node.ino, current.bytes);
      node.version = current.version;
      node.versionAtMs = nowMs;
      node.sizeBytes = current.bytes.length;
      node.mtimeNsec = ((node.mtimeNsec ?? 0) + 1) % NSEC_PER_SEC; // compared for equality only
    }
    return current;
  }
}

const EMPTY = Buffer.alloc(0);
