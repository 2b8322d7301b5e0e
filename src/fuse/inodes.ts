/**
 * The inode table: the static tree of served files, plus one copy per attached container under
 * /containers/<key>/. Inode numbers are handed out here and never reused.
 */
import { CONTROL_PATHS, VIEW_PATHS, isControlPath, isPressurePath, type ServedPath } from './layout';

/** Which files a tree has: at its top (shared, per reader) and in each container's subtree. */
export interface TreeLayout {
  shared: readonly ServedPath[];
  perContainer: readonly ServedPath[];
}

/** Every served file, shared and per container: the main mount's tree. */
export const FULL_LAYOUT: TreeLayout = {
  shared: [...VIEW_PATHS, ...CONTROL_PATHS],
  perContainer: [...VIEW_PATHS, ...CONTROL_PATHS],
};

export interface DirNode {
  kind: 'dir';
  ino: number;
  name: string;
  parent: number;
  children: Map<string, Node>;
  /** The container key of a directory of a per-container subtree (its top included); undefined = shared. */
  container?: string;
  /**
   * A cpuN directory of the CPU tree: shown to a reader only if it sees N+1 CPUs or more, or,
   * reading the host's tree, if the host has it (`onHost`).
   */
  cpu?: { index: number; onHost: boolean };
}
export interface FileNode {
  kind: 'file';
  ino: number;
  name: string;
  parent: number;
  path: ServedPath;
  writable: boolean;
  /** The container key of a per-container copy (under /containers/<key>/); undefined = shared. */
  container?: string;
  /**
   * A per-container file's size: the length of its latest content (the size the page-cache
   * store at open gave the inode, or the content a page-cache tree serves). GETATTR says the
   * same, or an fstat (mmap readers make one) would set the size back to 0 and those readers
   * would see an empty file.
   */
  sizeBytes?: number;
  /**
   * Page-cache trees: the content version native was last given, when (performance.now()), and
   * the mtime's nanoseconds that tell the kernel it changed.
   */
  version?: number;
  versionAtMs?: number;
  mtimeNsec?: number;
}
export type Node = DirNode | FileNode;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const ROOT_INO = 1;

export function modeOf(node: Node): number {
  if (node.kind === 'dir') return S_IFDIR | 0o555;
  // Pressure files: 0666 like the kernel's (anyone may write a PSI trigger, kernel >= 6.5).
  if (isPressurePath(node.path)) return S_IFREG | 0o666;
  return S_IFREG | (node.writable ? 0o644 : 0o444);
}

/** Shared files say 0: their content depends on the reader, and none is in their page cache. */
export function sizeOf(node: Node): number {
  return node.kind === 'file' ? (node.sizeBytes ?? 0) : 0;
}

export function nlinkOf(node: Node): number {
  return node.kind === 'dir' ? 2 : 1;
}

export class InodeTable {
  private readonly nodes = new Map<number, Node>();
  /** Inode numbers are never reused: the kernel may still hold a removed container's. */
  private nextIno = ROOT_INO + 1;
  private readonly containersDir: DirNode;
  /** Directory name under /containers -> container key (hashed names cannot be decoded). */
  private readonly containerKeysByName = new Map<string, string>();

  /** `containersDirName`: the directory holding the per-container subtrees. */
  constructor(containersDirName: string, private readonly layout: TreeLayout = FULL_LAYOUT) {
    const root: DirNode = { kind: 'dir', ino: ROOT_INO, name: '', parent: ROOT_INO, children: new Map() };
    this.nodes.set(ROOT_INO, root);
    this.addServedFiles(root, layout.shared);
    this.containersDir = this.ensureDir(root, containersDirName);
  }

  get(ino: number): Node | undefined {
    return this.nodes.get(ino);
  }

  /** Adds the subtree `name` for container `key`, a copy of every served file (idempotent). */
  addContainer(key: string, name: string): void {
    if (this.containersDir.children.has(name)) return;
    this.addServedFiles(this.ensureDir(this.containersDir, name, key), this.layout.perContainer, key);
    this.containerKeysByName.set(name, key);
  }

  /**
   * Removes the subtree `name` (its container is gone) and returns its files. Open handles keep
   * the content they have.
   */
  removeContainer(name: string): FileNode[] {
    const dir = this.containersDir.children.get(name);
    if (dir?.kind !== 'dir') return [];
    this.containersDir.children.delete(name);
    this.containerKeysByName.delete(name);
    const files: FileNode[] = [];
    const forget = (node: Node): void => {
      this.nodes.delete(node.ino);
      if (node.kind === 'dir') for (const child of node.children.values()) forget(child);
      else files.push(node);
    };
    forget(dir);
    return files;
  }

  /** Marks `dir`'s cpuN children as reader-dependent (see DirNode.cpu); `hostIds`: the host's N. */
  markCpuDirs(dirPath: string, hostIds: readonly number[]): void {
    let dir: Node | undefined = this.nodes.get(ROOT_INO);
    for (const part of dirPath.split('/').filter(Boolean)) dir = dir?.kind === 'dir' ? dir.children.get(part) : undefined;
    if (dir?.kind !== 'dir') return;
    const onHost = new Set(hostIds);
    for (const [name, child] of dir.children) {
      const match = /^cpu(\d+)$/.exec(name);
      if (match && child.kind === 'dir') child.cpu = { index: Number(match[1]), onHost: onHost.has(Number(match[1])) };
    }
  }

  /** Every per-container file. */
  *containerFiles(): Generator<FileNode> {
    for (const node of this.nodes.values()) if (node.kind === 'file' && node.container !== undefined) yield node;
  }

  /** Keys of the containers that have a subtree. */
  containerKeys(): string[] {
    return [...this.containerKeysByName.values()];
  }

  private addServedFiles(top: DirNode, files: readonly ServedPath[], container?: string): void {
    for (const p of files) this.addFile(top, p, isControlPath(p) || isPressurePath(p), container);
  }

  private ensureDir(parent: DirNode, name: string, container?: string): DirNode {
    const existing = parent.children.get(name);
    if (existing) {
      if (existing.kind !== 'dir') throw new Error(`layout conflict at ${name}`);
      return existing;
    }
    const dir: DirNode = { kind: 'dir', ino: this.nextIno++, name, parent: parent.ino, children: new Map(), container };
    this.nodes.set(dir.ino, dir);
    parent.children.set(name, dir);
    return dir;
  }

  private addFile(top: DirNode, filePath: ServedPath, writable: boolean, container?: string): void {
    const parts = filePath.split('/').filter(Boolean);
    const name = parts.pop() ?? '';
    let dir = top;
    for (const part of parts) dir = this.ensureDir(dir, part, container);
    const file: FileNode = { kind: 'file', ino: this.nextIno++, name, parent: dir.ino, path: filePath, writable, container };
    this.nodes.set(file.ino, file);
    dir.children.set(name, file);
  }
}
