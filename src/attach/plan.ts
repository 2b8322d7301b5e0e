/**
 * The planning half of attach (manager.ts applies): what to bind where in one mount namespace,
 * from its mountinfo and, for foreign FUSE mounts, whether their connection is dead. Reads only.
 */
import fs from 'node:fs';
import path from 'node:path';
import { MAX_DETACH_IDS, type AttachPair } from './attach';
import type { CgroupLocation } from '../cgroup/snapshot';
import { CONTAINERS_DIR, containerDirName, containerFilePath, treeOfContainerFile, type TreeKind } from '../fuse/filesystem';
import { CONTROL_PATHS, CPU_TREE_DIR, PRESSURE_PATHS, VIEW_PATHS, type ServedPath } from '../fuse/layout';
import { mountStacks, readMountinfo, stackHidden, type MountEntry } from './mountinfo';

/** One mount namespace to plan for. */
export interface PlanRequest {
  /** The namespace's representative process: mountinfo is read, and the helper enters, through it. */
  pid: number;
  /** Its process's cgroup (null: unknown). */
  location: CgroupLocation | null;
  /** Attach that container's copies (its cgroup matched a prefix); false: repair only. */
  attach: boolean;
  /** "major:minor" of our live mounts. */
  ourDevices: OurDevices;
  /**
   * Where the container's / is as the process sees it: "/" (default) once it runs in its root;
   * the rootfs path before the runtime's pivot_root (the OCI hook), so that the binds are made
   * under the rootfs, which pivot_root keeps (binds on the old root's /proc are thrown away).
   */
  root?: string;
}

/** "major:minor" of each of our live mounts: the main tree's and the container-views tree's. */
export type OurDevices = Readonly<Record<TreeKind, string>>;

/** What plan() found to do in one mount namespace; apply() does it. */
export interface AttachPlan {
  pid: number;
  /** The container whose subtree (/containers/<key>/) some sources are in: apply() creates it. */
  container: CgroupLocation | null;
  /** What to bind where, each with the mounts to detach from its target first (mountsToDetach). */
  pairs: AttachPair[];
  /** Targets whose pair replaces a dead predecessor's mount (repair) rather than attaching. */
  repairTargets: ReadonlySet<string>;
}

/** How a mount on a target relates to us (see mountsToDetach). */
type MountOwner = 'ours' | 'dead-predecessor' | 'dead-fuse' | 'other';

/**
 * The files attach binds, as the container sees them: the views and the control files. A bind
 * needs an existing target and nothing is created inside a container, so a file the container
 * does not have is skipped: the control files exist only on kernels with the feature isolfs
 * stands in for (or where a runtime put a placeholder); elsewhere a pod mounts
 * <mnt>/proc/sys/kernel with a hostPath volume. The pressure files exist where the kernel has
 * PSI on; runc refuses binds over /proc/pressure at creation, so attach is how a container gets
 * them.
 */
export const ATTACHED_FILES: readonly ServedPath[] = [
  ...VIEW_PATHS,
  ...CONTROL_PATHS,
  ...PRESSURE_PATHS,
];

export interface PlannerOptions {
  mountpoint: string;
  /** Where the container-views tree is mounted (sources of attached views). */
  viewsMountpoint: string;
  procRoot: string;
  /** Our mount's source name (mountSourceName(mountpoint)): a dead mount of it is a predecessor's. */
  ourSource: string;
  /** How a mount's FUSE connection is asked whether it answers (see AttachManagerOptions.statfs). */
  statfs?: (probe: string) => Promise<unknown>;
  /** How long a statfs may take before the mount is taken as alive (hung); default 2 s. */
  statfsTimeoutMs?: number;
  /** The manager's rate-limited warning. */
  warn: (key: string, fields: object, message: string) => void;
}

/** One namespace being planned: where it is, what its mounts are, and the pairs found so far. */
interface Look {
  request: PlanRequest;
  procDir: string;
  stacks: Map<string, MountEntry[]>;
  pairs: Map<string, AttachPair>;
  repairTargets: Set<string>;
}

export class AttachPlanner {
  /** Per scan: device -> whether its FUSE connection is dead. */
  private deviceVerdicts = new Map<string, Promise<boolean>>();
  /** A statfs has not returned yet (it holds a libuv pool thread): no other is started. */
  private probeOutstanding = false;
  /** Settles when the outstanding statfs returns. */
  private probeSettled: Promise<void> = Promise.resolve();

  constructor(private readonly options: PlannerOptions) {}

  /** Verdicts are kept for one scan: a new scan asks again. */
  startScan(): void {
    this.deviceVerdicts = new Map();
  }

  /**
   * What to do in one namespace, without doing any of it: every topmost isolfs mount that is a
   * dead predecessor's is repaired, and with `attach`, every attached file that exists in the
   * container and is not already that container's copy from our mount is bound. Reads the
   * namespace's mountinfo and asks (bounded) whether foreign connections are dead; never stats
   * through a FUSE mount on the event loop (fs.promises runs in libuv's pool: our own mount may
   * be the one answering).
   */
  async plan(request: PlanRequest): Promise<AttachPlan> {
    const { pid, location } = request;
    const procDir = path.join(this.options.procRoot, String(pid));
    const mounts = readMountinfo(procDir);
    if (mounts === null) {
      // Gone since listed, or more mounts than the cap: looked at again after verifyEveryScans.
      this.options.warn(`mountinfo:${procDir}`, { procDir }, 'cannot read a namespace\'s mountinfo within the cap: skipping it');
      return { pid, container: null, pairs: [], repairTargets: new Set() };
    }
    const look: Look = { request, procDir, stacks: mountStacks(mounts), pairs: new Map(), repairTargets: new Set() };
    const repairsInContainer = await this.planRepairs(look);
    if (request.attach && location !== null) await this.planAttach(look, location);
    const container = repairsInContainer || request.attach ? location : null;
    return { pid, container, pairs: [...look.pairs.values()], repairTargets: look.repairTargets };
  }

  /**
   * A pair for every topmost mount that is a dead predecessor's; true when a source is in the
   * container's subtree. Only isolfs mounts of our source are asked (a namespace may hold any
   * number of other FUSE mounts, and each hung one would hold a pool thread).
   */
  private async planRepairs(look: Look): Promise<boolean> {
    const { procDir, request } = look;
    let inContainer = false;
    for (const [mountpoint, stack] of look.stacks) {
      if (!this.isPredecessorCandidate(stack[0], request.ourDevices)) continue;
      if ((await this.ownerOf(stack[0], procDir, request.ourDevices, true)) !== 'dead-predecessor') continue;
      const source = this.sourceFor(stack[0].root, request.location);
      if (source.inContainer) inContainer = true;
      const detachMountIds = await this.mountsToDetach(stack, procDir, request.ourDevices);
      look.pairs.set(mountpoint, { source: source.path, target: mountpoint, detachMountIds });
      look.repairTargets.add(mountpoint);
    }
    return inContainer;
  }

  /** A pair for every attached file the container has that is not already its copy from our mount. */
  private async planAttach(look: Look, location: CgroupLocation): Promise<void> {
    const { procDir, request } = look;
    const cpuDirNew = await this.planCpuDir(look);
    // Which unmounted targets exist, asked all at once (each lstat is a trip through libuv's pool).
    const unmounted = ATTACHED_FILES.map((file) => targetIn(request, file)).filter((target) => !look.stacks.has(target));
    const existing = await Promise.all(unmounted.map((target) => exists(path.join(procDir, 'root', target))));
    const present = new Set(unmounted.filter((_, i) => existing[i]));
    for (const file of ATTACHED_FILES) {
      const own = containerFilePath(location.key, file);
      const tree = treeOfContainerFile(file);
      const target = targetIn(request, file);
      const stack = look.stacks.get(target);
      // Under a CPU directory bound now, a copy bound before is hidden: it is bound again on top.
      // So is one whose parent was mounted over since (a fresh /proc after an early attach).
      const hidden = (cpuDirNew && file.startsWith(`${CPU_TREE_DIR}/`)) || (stack !== undefined && stackHidden(stack, look.stacks));
      // Already that copy, from the tree that serves it now (an older daemon served views from the main tree).
      if (stack && !hidden && stack[0].device === request.ourDevices[tree] && isOurMount(stack[0], request.ourDevices) && stack[0].root === own) continue;
      if (!(stack || present.has(target))) continue;
      const detachMountIds = stack && !hidden ? await this.mountsToDetach(stack, procDir, request.ourDevices) : [];
      look.pairs.set(target, { source: this.mountpointOf(tree) + own, target, detachMountIds });
    }
  }

  /**
   * The CPU directory whole (true: a pair was planned), from the main tree: which cpuN names
   * exist depends on who reads, which the main tree answers per reader at each lookup (a
   * per-container copy would need a tree whose shape follows the container's quota). `online`
   * from the container's copy goes on top of it (ATTACHED_FILES, after this pair), so readers
   * that read through the page cache (sendfile, mmap) get its bytes.
   */
  private async planCpuDir(look: Look): Promise<boolean> {
    const { procDir, request } = look;
    const target = targetIn(request, CPU_TREE_DIR);
    const stack = look.stacks.get(target);
    if (stack && stack[0].device === request.ourDevices.main && isOurMount(stack[0], request.ourDevices) && stack[0].root === CPU_TREE_DIR) return false;
    if (!(stack || (await exists(path.join(procDir, 'root', target))))) return false;
    const detachMountIds = stack ? await this.mountsToDetach(stack, procDir, request.ourDevices) : [];
    look.pairs.set(target, { source: this.options.mountpoint + CPU_TREE_DIR, target, detachMountIds });
    return true;
  }

  /**
   * The naming rule: which mounts to detach from a target before ours is bound over it. From the
   * top of the target's stack down, while each is ours (our live device: a stale copy or another
   * file, replaced by the right one) or a dead FUSE mount (a predecessor's, lxcfs's: it answers
   * ENOTCONN to every reader); the first other one stops it, so a live mount of another daemon,
   * instance or filesystem and everything beneath it stay, and ours goes on top.
   */
  private async mountsToDetach(stack: readonly MountEntry[], procDir: string, ourDevices: OurDevices): Promise<number[]> {
    const named: number[] = [];
    for (const [depth, mount] of stack.entries()) {
      if (named.length === MAX_DETACH_IDS) break;
      if ((await this.ownerOf(mount, procDir, ourDevices, depth === 0)) === 'other') break;
      named.push(mount.id);
    }
    return named;
  }

  /**
   * Ours, a dead predecessor's, or other. Only the topmost mount on a path can be asked
   * (statfs through the path reaches it alone); one beneath counts as dead only when its device
   * was already found dead this scan, never by guess.
   */
  private async ownerOf(mount: MountEntry, procDir: string, ourDevices: OurDevices, topmost: boolean): Promise<MountOwner> {
    if (isOurMount(mount, ourDevices)) return 'ours';
    if (mount.fstype !== 'fuse' && !mount.fstype.startsWith('fuse.')) return 'other';
    const dead = topmost
      ? await this.connectionDead(mount.device, path.join(procDir, 'root', mount.mountpoint))
      : await (this.deviceVerdicts.get(mount.device) ?? false);
    // A FUSE mount that still answers (a hung predecessor, lxcfs, another instance) is not ours to take.
    if (!dead) return 'other';
    // A dead one answers ENOTCONN to every reader: replacing it can only help. Only our own
    // predecessors' are repaired where they stand (sourced from our tree).
    return this.isPredecessorCandidate(mount, ourDevices) ? 'dead-predecessor' : 'dead-fuse';
  }

  /** An isolfs mount made for our mountpoint (our source name: either tree) but not one of our live connections. */
  private isPredecessorCandidate(mount: MountEntry, ourDevices: OurDevices): boolean {
    return mount.fstype === ISOLFS_FSTYPE && mount.source === this.options.ourSource && !isOurMount(mount, ourDevices);
  }

  /** Where the tree is mounted. */
  private mountpointOf(tree: TreeKind): string {
    return tree === 'main' ? this.options.mountpoint : this.options.viewsMountpoint;
  }

  /**
   * Whether the FUSE connection behind a mount (not ours) is gone: statfs through it fails with
   * ENOTCONN. Not stat: the kernel answers that from cached attributes even when the daemon is
   * dead. statfs runs in libuv's pool and cannot be cancelled: one to a hung daemon holds a pool
   * thread until that daemon answers. So at most one is ever outstanding: another waits for it
   * at most the timeout, then counts as alive unasked (not replaced now, looked at again on a
   * later scan). Verdicts are kept for one scan (or a second of quick looks).
   */
  private connectionDead(device: string, probe: string): Promise<boolean> {
    const known = this.deviceVerdicts.get(device);
    if (known !== undefined) return known;
    const timeoutMs = this.options.statfsTimeoutMs ?? STATFS_TIMEOUT_MS;
    const verdict = this.probeSlot(timeoutMs).then((free) => (free ? this.probe(probe, timeoutMs) : false));
    this.deviceVerdicts.set(device, verdict);
    return verdict;
  }

  /**
   * Waits (at most timeoutMs) until no statfs is outstanding, then takes the slot: true. False:
   * one still is (hung). Namespaces are planned concurrently: without the wait, a predecessor's
   * second device asked while its first is would count as alive and stay unrepaired until a later scan.
   */
  private async probeSlot(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.probeOutstanding) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await Promise.race([this.probeSettled, sleep(left)]);
    }
    this.probeOutstanding = true;
    return true;
  }

  /** One statfs, holding the slot until it returns; the verdict comes at the latest after timeoutMs (hung: alive). */
  private probe(probe: string, timeoutMs: number): Promise<boolean> {
    const statfs = this.options.statfs ?? fs.promises.statfs;
    const check = statfs(probe).then(
      () => false,
      (err: NodeJS.ErrnoException) => err.code === 'ENOTCONN' || err.code === 'ECONNABORTED',
    ).finally(() => {
      this.probeOutstanding = false;
    });
    this.probeSettled = check.then(() => undefined);
    return Promise.race([check, sleep(timeoutMs).then(() => false)]);
  }

  /**
   * The source for a dead mount whose path inside the old file system was `root`: the same
   * path in ours. For a per-container copy (/containers/<name>/...) of this namespace's own
   * cgroup, that container's copy (inContainer: its subtree must exist, apply() creates it, as
   * we are a new daemon); a copy of some other cgroup (the process moved, the key came from
   * another of its processes) is replaced by the shared file, which gives each reader its own
   * cgroup's view: no mount is left dead.
   */
  private sourceFor(root: string, location: CgroupLocation | null): { path: string; inContainer: boolean } {
    const prefix = `/${CONTAINERS_DIR}/`;
    if (!root.startsWith(prefix)) return { path: this.options.mountpoint + root, inContainer: false };
    const slash = root.indexOf('/', prefix.length);
    const name = root.slice(prefix.length, slash < 0 ? undefined : slash);
    const rest = slash < 0 ? '/' : root.slice(slash);
    const served = [...VIEW_PATHS, ...CONTROL_PATHS, ...PRESSURE_PATHS].find((file) => file === rest);
    if (served !== undefined && location && location.key !== '/' && containerDirName(location.key) === name) {
      // The copy's tree now (a predecessor of an older version may have served it from the other).
      return { path: this.mountpointOf(treeOfContainerFile(served)) + root, inContainer: true };
    }
    return { path: this.options.mountpoint + rest, inContainer: false };
  }
}

const ISOLFS_FSTYPE = 'fuse.isolfs';

/** Where a container path is in the namespace's process's root (under the rootfs before pivot_root). */
function targetIn(request: PlanRequest, file: string): string {
  return path.posix.join(request.root ?? '/', file);
}

/** A mount of one of our live connections (a device is unique to it), whatever file it shows. */
function isOurMount(mount: MountEntry, ourDevices: OurDevices): boolean {
  return mount.fstype === ISOLFS_FSTYPE && (mount.device === ourDevices.main || mount.device === ourDevices['container-views']);
}

/** How long a statfs of a foreign FUSE mount may take before we call it alive (hung). */
const STATFS_TIMEOUT_MS = 2000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Whether a path exists, without following a final symlink; in libuv's pool (see plan()). */
async function exists(p: string): Promise<boolean> {
  try {
    await fs.promises.lstat(p);
    return true;
  } catch (err) {
    // ENOTCONN and the like: something (dead) is there. Only "not there" means absent.
    const code = (err as NodeJS.ErrnoException).code;
    return code !== 'ENOENT' && code !== 'ENOTDIR';
  }
}
