/**
 * The cpuN directories of /sys/devices/system/cpu: which a reader sees depends on the reader
 * (its CPU count), asked of the backend at each LOOKUP and READDIR of them. The kernel caches
 * none of these answers (filesystem.ts: entry timeout 0, and an ENOENT leaves no cached
 * negative entry), so one container's cpu1 is never shown to another.
 */
import { constants as osConstants } from 'node:os';
import { isErrno, type FileBackend } from './fileBackend';
import type { DirNode, Node, TreeLayout } from './inodes';
import type { CpuTreePath } from './layout';
import type { FuseRequest } from './native';

const { errno: E } = osConstants;

/**
 * The host's /sys/devices/system/cpu as scanned at start-up: every file's path (cpuN/ ones for
 * each N a reader may see) and the N the host has.
 */
export interface CpuTreeLayout {
  paths: readonly CpuTreePath[];
  hostCpuIds: readonly number[];
}

/** `layout` with the CPU tree's files among its shared ones (`online` is a view already). */
export function withCpuTree(layout: TreeLayout, cpuTree: CpuTreeLayout | undefined): TreeLayout {
  if (!cpuTree) return layout;
  return { ...layout, shared: [...layout.shared, ...cpuTree.paths.filter((p) => !layout.shared.includes(p))] };
}

export class ReaderCpuDirs {
  constructor(private readonly backend: FileBackend) {}

  /** 0 when the request's reader sees `node` (or it is no cpuN), else the errno to answer. */
  lookupErrno(req: FuseRequest, node: Node): number {
    if (node.kind !== 'dir' || !node.cpu) return 0;
    const count = this.count(req);
    if (isErrno(count)) return count.errno;
    return shown(node, count) ? 0 : E.ENOENT;
  }

  /** For one READDIR: whether to list `child`. The backend is asked once, at the first cpuN. */
  listFilter(req: FuseRequest): (child: Node) => boolean {
    let count: number | null | undefined | 'none';
    return (child) => {
      if (child.kind !== 'dir' || !child.cpu) return true;
      if (count === undefined) {
        const asked = this.count(req);
        count = isErrno(asked) ? 'none' : asked; // an error: no cpuN listed (LOOKUP answers it)
      }
      return count !== 'none' && shown(child, count);
    };
  }

  private count(req: FuseRequest): number | null | { errno: number } {
    const count = this.backend.cpuDirCount?.({ pid: req.pid, uid: req.uid, gid: req.gid });
    return count === undefined ? null : count;
  }
}

/** Whether cpuN directory `node` is shown to a reader seeing `count` CPUs (null: the host's tree). */
function shown(node: DirNode, count: number | null): boolean {
  if (!node.cpu) return true;
  return count === null ? node.cpu.onHost : node.cpu.index < count;
}
