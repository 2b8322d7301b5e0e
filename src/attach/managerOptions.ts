/** What the attach manager (manager.ts) is given: where things are, and what it may call. */
import type { CgroupHierarchy } from '../cgroup/hierarchy';
import type { CgroupLocation } from '../cgroup/snapshot';
import type { Logger } from '../log';

/** What the manager needs of the file system: per-container subtrees (created, never removed here). */
export interface ContainerTree {
  addContainer: (key: string) => boolean;
}

/** The container registry: told of each container given a subtree; its sweep removes it again. */
export interface AttachedContainers {
  markAttached: (location: CgroupLocation) => void;
  /** Whether a container below an attached one may get a subtree of its own (a bound per attached container). */
  mayAttach?: (key: string) => boolean;
  /** The outermost attached container at or above a cgroup, else the cgroup (registry.tenantOf). */
  tenantOf?: (key: string) => string;
}

export interface AttachManagerOptions {
  mountpoint: string;
  /** Where the container-views tree is mounted (the attached views' sources). */
  viewsMountpoint: string;
  procRoot: string;
  hierarchy: CgroupHierarchy;
  helperPath: string;
  /** Cgroup path prefixes to attach to (--attach); empty = repair only. */
  prefixes: readonly string[];
  /** The full scan's interval (the safety net beside event-driven discovery). */
  intervalMs: number;
  /** The host switch: attach only while it is on (repair always). */
  hostIsolated: () => boolean;
  tree: ContainerTree;
  /** Called after tree.addContainer(key) succeeded, with where that container is. */
  containers: AttachedContainers;
  logger: Logger;
  /** At most this many namespaces looked at (planned and their helper run) at once; default 2 per CPU (2..32). */
  maxConcurrentAttaches?: number;
  /** Event-driven discovery (inotify on the cgroup directories under the prefixes); default true. */
  watch?: boolean;
  /** When a new cgroup is looked at, in ms after its event (default lookSchedule.ts LOOK_DELAYS_MS). */
  lookDelaysMs?: readonly number[];
  /** Scans between two looks at a namespace already handled (default 6). */
  verifyEveryScans?: number;
  /** How a mount's FUSE connection is asked whether it answers (default fs.promises.statfs;
   *  tests pass a fake: ENOTCONN cannot be had without root). */
  statfs?: (probe: string) => Promise<unknown>;
  /** How long that statfs may take before the mount counts as alive (hung); default 2 s. */
  statfsTimeoutMs?: number;
}
