/**
 * Keeps containers' mounts of isolfs alive and, with --attach, puts them there.
 *
 * Every scan lists the host's mount namespaces (one representative process each, the lowest
 * pid) and looks at those that are new or due for another look, reading their mountinfo:
 *
 * - repair (always on): a namespace holding an isolfs mount that is not our live connection
 *   (a previous daemon's, dead since it was killed: "Transport endpoint is not connected") gets
 *   each such mount replaced by a fresh one of the same file from our mount. This covers binds
 *   made at container creation from the shared hostPath files as well as attached ones, and the
 *   container keeps running.
 * - attach (--attach PREFIX, while the host switch is on): a namespace whose processes are in a
 *   cgroup starting with PREFIX gets the container's own copies (/containers/<key>/...) bound
 *   over /proc/... and /sys/devices/system/cpu/online, including /proc/vmstat, which runc refuses
 *   to bind at creation. A namespace already done is looked at again every few scans (mounts
 *   missing or not ours are attached again), so work per scan stays small: one stat per process,
 *   a mountinfo read per namespace looked at, at most maxNamespacesPerScan helper runs.
 *
 * Each namespace looked at is first planned (plan(): reads only, returns what to do, including
 * which mounts to detach from each target: mountsToDetach states the rule), then applied
 * (apply(): creates the container's subtree, tells the registry, runs the helper).
 *
 * Why mountinfo rather than the helper's --check: mountinfo names the filesystem's device, which
 * tells our live connection from a previous daemon's dead one and from another FUSE filesystem
 * (--check only says whether a stat answers), and reading it costs no process and no FUSE request.
 *
 * The helper (isolfs-attach) stats its sources through our own mount, so it is only ever run
 * asynchronously: the event loop must stay free to answer those requests.
 */
import fs from 'node:fs';
import path from 'node:path';
import { attachFiles, AttachHelperError, MAX_DETACH_IDS, type AttachPair, type AttachResult } from './attach';
import { locateProcess } from '../identity/processCgroup';
import type { CgroupHierarchy } from '../cgroup/hierarchy';
import type { CgroupLocation } from '../cgroup/snapshot';
import { CONTAINERS_DIR, containerDirName, containerFilePath, mountSourceName } from '../fuse/filesystem';
import { CONTROL_PATHS, VIEW_PATHS, type ServedPath } from '../fuse/layout';
import { RateLimitedLog, type Logger } from '../log';
import { mountStacks, readMountinfo, realMountpointPath, type MountEntry } from './mountinfo';

export { parseMountinfo, topmostMounts, type MountEntry } from './mountinfo';

/** What the manager needs of the file system: per-container subtrees (created, never removed here). */
export interface ContainerTree {
  addContainer(key: string): boolean;
}

/** The container registry: told of each container given a subtree; its sweep removes it again. */
export interface AttachedContainers {
  markAttached(location: CgroupLocation): void;
}

export interface AttachManagerOptions {
  mountpoint: string;
  procRoot: string;
  hierarchy: CgroupHierarchy;
  helperPath: string;
  /** Cgroup path prefixes to attach to (--attach); empty = repair only. */
  prefixes: readonly string[];
  intervalMs: number;
  /** The host switch: attach only while it is on (repair always). */
  hostIsolated: () => boolean;
  tree: ContainerTree;
  /** Called after tree.addContainer(key) succeeded, with where that container is. */
  containers: AttachedContainers;
  logger: Logger;
  /** At most this many helper runs per scan; namespaces beyond wait for the next scan. */
  maxNamespacesPerScan?: number;
  /** Scans between two looks at a namespace already handled (default 6). */
  verifyEveryScans?: number;
  /** How a mount's FUSE connection is asked whether it answers (default fs.promises.statfs;
   *  tests pass a fake: ENOTCONN cannot be had without root). */
  statfs?: (probe: string) => Promise<unknown>;
}

/** One mount namespace to plan for. */
export interface PlanRequest {
  /** The namespace's representative process: mountinfo is read, and the helper enters, through it. */
  pid: number;
  /** Its process's cgroup (null: unknown). */
  location: CgroupLocation | null;
  /** Attach that container's copies (its cgroup matched a prefix); false: repair only. */
  attach: boolean;
  /** "major:minor" of our live mount. */
  ourDevice: string;
}

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

export interface ScanReport {
  /** Mount namespaces seen (other than ours). */
  namespaces: number;
  /** Of those, how many were looked at (mountinfo read): new ones and those due. */
  inspected: number;
  repairedMounts: number;
  attachedContainers: number;
  failures: number;
  durationMs: number;
}

/**
 * The files attach binds, as the container sees them: the views (not diskstats: it is the
 * host's file anyway) and the control files. A bind needs an existing target and nothing is
 * created inside a container, so a file the container does not have is skipped: the control
 * files exist only on kernels with the feature isolfs stands in for (or where a runtime put a
 * placeholder); elsewhere a pod mounts <mnt>/proc/sys/kernel with a hostPath volume.
 */
export const ATTACHED_FILES: readonly ServedPath[] = [
  ...VIEW_PATHS.filter((p) => p !== '/proc/diskstats'),
  ...CONTROL_PATHS,
];

/**
 * How many scans pass between two looks at a namespace already handled (30 s at the default
 * interval). A look is one mountinfo read and a few lstats, no helper unless something is
 * missing or dead; it catches an attach that landed before the runtime's pivot_root (then
 * discarded with the old root), mounts someone removed, and a reused namespace inode.
 */
const VERIFY_EVERY_SCANS = 6;
/** Helper runs in a row after which a namespace is no longer looked at again on the next scan. */
const MAX_QUICK_RUNS = 3;
/** Let FUSE requests in between: a node may have tens of thousands of processes. */
const YIELD_EVERY_PIDS = 256;

interface NamespaceState {
  /** The container attached there (null: repair only, or not under a prefix). */
  key: string | null;
  /** The scan number at which to look at the namespace again. */
  verifyAtScan: number;
  /** Helper runs in a row that found something to do here (a look that finds none resets it). */
  runsInARow: number;
}

export class AttachManager {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<ScanReport> | null = null;
  /** Mount namespaces seen (by inode) and what was done there. */
  private readonly handled = new Map<number, NamespaceState>();
  private readonly rateLimited = new RateLimitedLog(60_000);
  private readonly ownMountNamespace: number | null;
  private readonly maxPerScan: number;
  private readonly verifyEveryScans: number;
  private scanCount = 0;
  private readonly ourSource: string;
  /** mountinfo shows paths with symlinks resolved. */
  private readonly realMountpoint: string;
  /** Per scan: device -> whether its FUSE connection is dead. */
  private deviceVerdicts = new Map<string, Promise<boolean>>();
  /** Devices whose statfs has not returned yet. */
  private readonly hungDevices = new Set<string>();

  constructor(private readonly options: AttachManagerOptions) {
    this.ownMountNamespace = namespaceInode(path.join(options.procRoot, 'self'));
    this.maxPerScan = options.maxNamespacesPerScan ?? 50;
    this.verifyEveryScans = options.verifyEveryScans ?? VERIFY_EVERY_SCANS;
    this.ourSource = mountSourceName(options.mountpoint);
    this.realMountpoint = realMountpointPath(options.mountpoint);
  }

  /** Scans now, then every intervalMs. */
  start(): void {
    if (this.timer !== null) return;
    void this.scan();
    this.timer = setInterval(() => void this.scan(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One scan; concurrent calls share the one in progress. */
  scan(): Promise<ScanReport> {
    if (this.running === null) {
      this.running = this.scanOnce().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  private async scanOnce(): Promise<ScanReport> {
    const started = performance.now();
    const scan = ++this.scanCount;
    const report: ScanReport = { namespaces: 0, inspected: 0, repairedMounts: 0, attachedContainers: 0, failures: 0, durationMs: 0 };
    const ourDevice = this.ourDevice();
    if (ourDevice === null) {
      this.warn('no-mount', {}, 'our own mount is not in /proc/self/mountinfo: nothing to attach or repair');
      return report;
    }
    this.deviceVerdicts = new Map();
    const seen = new Set<number>();
    const attaching = this.options.prefixes.length > 0 && this.options.hostIsolated();
    let helperRuns = 0;
    const pids = listPids(this.options.procRoot);
    for (let i = 0; i < pids.length; i++) {
      if (i % YIELD_EVERY_PIDS === YIELD_EVERY_PIDS - 1) await yieldToEventLoop();
      const pid = pids[i];
      const procDir = path.join(this.options.procRoot, String(pid));
      const ns = namespaceInode(procDir);
      if (ns === null || ns === this.ownMountNamespace || seen.has(ns)) continue;
      seen.add(ns);
      report.namespaces++;
      const state = this.handled.get(ns);
      // Only locate when it can matter: every scan while attaching (a process may have moved
      // into a container's cgroup since), otherwise when the namespace is looked at anyway.
      let location = attaching ? this.locate(pid) : undefined;
      const matching = attaching ? this.matchingKey(location ?? null) : null;
      const due = state === undefined || scan >= state.verifyAtScan || (attaching && matching !== state.key);
      if (!due || helperRuns >= this.maxPerScan) continue; // over the bound: still due next scan
      if (location === undefined) location = this.locate(pid);
      report.inspected++;
      const key = attaching ? matching : state?.key ?? null;
      const plan = await this.plan({ pid, location, attach: matching !== null, ourDevice });
      if (plan.pairs.length === 0) {
        this.handled.set(ns, { key, verifyAtScan: scan + this.verifyEveryScans, runsInARow: 0 });
        continue;
      }
      helperRuns++;
      const runsInARow = (state?.runsInARow ?? 0) + 1;
      try {
        const results = await this.apply(plan);
        // ENOENT: the target vanished between our look and the helper's (a container starting).
        const failed = results.filter((r): r is Extract<AttachResult, { ok: false }> => !r.ok && r.errno !== 'ENOENT');
        const done = results.filter((r) => r.ok).map((r) => r.target);
        report.failures += failed.length;
        report.repairedMounts += done.filter((t) => plan.repairTargets.has(t)).length;
        if (matching !== null && done.some((t) => !plan.repairTargets.has(t))) report.attachedContainers++;
        // After an attach, look again next scan: a runtime that had not yet switched to the
        // container's root throws such mounts away with the old root. Not forever, though: mounts
        // that vanish every time (something in the container removes them) are retried slowly.
        const clean = failed.length === 0;
        const soon = clean && runsInARow < MAX_QUICK_RUNS;
        this.handled.set(ns, { key, verifyAtScan: scan + (soon ? 1 : this.verifyEveryScans), runsInARow });
        if (runsInARow > MAX_QUICK_RUNS) this.warn(`again:${ns}`, { pid, container: matching, runsInARow }, 'isolfs mounts keep disappearing from a container');
        this.options.logger.info({
          pid, container: matching, dir: matching === null ? undefined : containerDirName(matching),
          repaired: [...plan.repairTargets], attached: done, failed: failed.map((r) => `${r.target}: ${r.errno} ${r.message}`),
          detachedMounts: results.reduce((sum, r) => sum + (r.ok ? r.detachedMounts : 0), 0),
          again: state !== undefined && state.key === matching,
        }, plan.repairTargets.size > 0 ? 'repaired isolfs mounts in a container' : 'attached isolfs files into a container');
        if (!clean) this.warn(`failed:${ns}`, { pid, container: matching, failed: failed.map((r) => `${r.target}: ${r.errno}`) }, 'some files could not be attached');
      } catch (err) {
        report.failures++;
        const gone = err instanceof AttachHelperError && err.errno === 'ESRCH';
        if (gone) {
          // The process exited since we listed it: another of the namespace's, next scan.
          this.handled.delete(ns);
        } else {
          this.handled.set(ns, { key: state?.key ?? null, verifyAtScan: scan + this.verifyEveryScans, runsInARow });
          this.warn(`helper:${ns}`, { pid, err: String(err) }, 'attach helper failed');
        }
      }
    }
    this.forgetVanished(seen);
    report.durationMs = performance.now() - started;
    const level = report.repairedMounts > 0 || report.attachedContainers > 0 || report.failures > 0 ? 'info' : 'debug';
    this.options.logger[level]({ ...report }, 'attach scan');
    return report;
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
    const { pid, location, ourDevice } = request;
    const procDir = path.join(this.options.procRoot, String(pid));
    const pairs = new Map<string, AttachPair>();
    const repairTargets = new Set<string>();
    let container: CgroupLocation | null = null;
    const mounts = readMountinfo(procDir);
    if (mounts === null) {
      // Gone since listed, or more mounts than the cap: looked at again after verifyEveryScans.
      this.warn(`mountinfo:${procDir}`, { procDir }, 'cannot read a namespace\'s mountinfo within the cap: skipping it');
      return { pid, container, pairs: [], repairTargets };
    }
    const stacks = mountStacks(mounts);
    for (const [mountpoint, stack] of stacks) {
      if ((await this.ownerOf(stack[0], procDir, ourDevice, true)) !== 'dead-predecessor') continue;
      const source = this.sourceFor(stack[0].root, location);
      if (source.inContainer) container = location;
      const detachMountIds = await this.mountsToDetach(stack, procDir, ourDevice);
      pairs.set(mountpoint, { source: source.path, target: mountpoint, detachMountIds });
      repairTargets.add(mountpoint);
    }
    if (request.attach && location !== null) {
      container = location;
      for (const file of ATTACHED_FILES) {
        const own = containerFilePath(location.key, file);
        const stack = stacks.get(file);
        if (stack && isOurMount(stack[0], ourDevice) && stack[0].root === own) continue;
        if (!(stack || (await exists(path.join(procDir, 'root', file))))) continue;
        const detachMountIds = stack ? await this.mountsToDetach(stack, procDir, ourDevice) : [];
        pairs.set(file, { source: this.options.mountpoint + own, target: file, detachMountIds });
      }
    }
    return { pid, container, pairs: [...pairs.values()], repairTargets };
  }

  /**
   * Does a plan: creates the container's subtree (when a source is in it) and tells the
   * registry, then runs the helper. One result per pair run; throws AttachHelperError when the
   * helper could do nothing (ESRCH: the process exited).
   */
  async apply(plan: AttachPlan): Promise<AttachResult[]> {
    let pairs = plan.pairs;
    if (plan.container !== null) {
      const { key } = plan.container;
      if (this.options.tree.addContainer(key)) {
        this.options.containers.markAttached(plan.container);
      } else {
        this.warn(`key:${key}`, { container: key }, 'not a cgroup path: not attaching its copies');
        const subtree = `${this.options.mountpoint}/${CONTAINERS_DIR}/${containerDirName(key)}/`;
        pairs = pairs.filter((p) => !p.source.startsWith(subtree));
      }
    }
    return attachFiles(this.options.helperPath, plan.pid, pairs);
  }

  /**
   * The naming rule: which mounts to detach from a target before ours is bound over it. From the
   * top of the target's stack down, while each is ours (our live device: a stale copy or another
   * file, replaced by the right one) or a dead FUSE mount (a predecessor's, lxcfs's: it answers
   * ENOTCONN to every reader); the first other one stops it, so a live mount of another daemon,
   * instance or filesystem and everything beneath it stay, and ours goes on top.
   */
  private async mountsToDetach(stack: readonly MountEntry[], procDir: string, ourDevice: string): Promise<number[]> {
    const named: number[] = [];
    for (const [depth, mount] of stack.entries()) {
      if (named.length === MAX_DETACH_IDS) break;
      if ((await this.ownerOf(mount, procDir, ourDevice, depth === 0)) === 'other') break;
      named.push(mount.id);
    }
    return named;
  }

  /**
   * Ours, a dead predecessor's, or other. Only the topmost mount on a path can be asked
   * (statfs through the path reaches it alone); one beneath counts as dead only when its device
   * was already found dead this scan, never by guess.
   */
  private async ownerOf(mount: MountEntry, procDir: string, ourDevice: string, topmost: boolean): Promise<MountOwner> {
    if (isOurMount(mount, ourDevice)) return 'ours';
    if (mount.fstype !== 'fuse' && !mount.fstype.startsWith('fuse.')) return 'other';
    const dead = topmost
      ? await this.connectionDead(mount.device, path.join(procDir, 'root', mount.mountpoint))
      : await (this.deviceVerdicts.get(mount.device) ?? false);
    // A FUSE mount that still answers (a hung predecessor, lxcfs, another instance) is not ours to take.
    if (!dead) return 'other';
    // A dead one answers ENOTCONN to every reader: replacing it can only help. Only our own
    // predecessors' are repaired where they stand (sourced from our tree).
    return mount.fstype === ISOLFS_FSTYPE && mount.source === this.ourSource ? 'dead-predecessor' : 'dead-fuse';
  }

  /**
   * Whether the FUSE connection behind a mount (not ours) is gone: statfs through it fails with
   * ENOTCONN. Not stat: the kernel answers that from cached attributes even when the daemon is
   * dead. statfs runs in libuv's pool and is bounded by a timeout, and a device whose previous
   * check never returned (a hung daemon) is not asked again, so a hung filesystem can hold at
   * most one pool thread and never stalls a scan. Verdicts are kept for one scan.
   */
  private connectionDead(device: string, probe: string): Promise<boolean> {
    const known = this.deviceVerdicts.get(device);
    if (known) return known;
    if (this.hungDevices.has(device)) return Promise.resolve(false);
    this.hungDevices.add(device);
    const statfs = this.options.statfs ?? fs.promises.statfs;
    const check = statfs(probe).then(
      () => false,
      (err: NodeJS.ErrnoException) => err.code === 'ENOTCONN' || err.code === 'ECONNABORTED',
    ).finally(() => this.hungDevices.delete(device));
    const verdict = Promise.race([check, sleep(STATFS_TIMEOUT_MS).then(() => false)]);
    this.deviceVerdicts.set(device, verdict);
    return verdict;
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
    if (location && location.key !== '/' && containerDirName(location.key) === name) {
      return { path: this.options.mountpoint + root, inContainer: true };
    }
    return { path: this.options.mountpoint + rest, inContainer: false };
  }

  private matchingKey(location: CgroupLocation | null): string | null {
    if (!location || location.key === '/') return null;
    return this.options.prefixes.some((p) => location.key.startsWith(p)) ? location.key : null;
  }

  private locate(pid: number): CgroupLocation | null {
    const found = locateProcess(this.options.procRoot, this.options.hierarchy, pid);
    return found.found ? found.location : null;
  }

  /**
   * Namespaces that no longer exist: forget them, so `handled` holds at most the namespaces of
   * one scan. (Containers are the registry's: its sweep drops those whose cgroup is gone.)
   */
  private forgetVanished(seen: Set<number>): void {
    for (const ns of [...this.handled.keys()]) if (!seen.has(ns)) this.handled.delete(ns);
  }

  /** "major:minor" of our live mount, from our own mountinfo. */
  private ourDevice(): string | null {
    for (const mount of readMountinfo(path.join(this.options.procRoot, 'self')) ?? []) {
      if (mount.source === this.ourSource && mount.mountpoint === this.realMountpoint && mount.root === '/') return mount.device;
    }
    return null;
  }

  private warn(key: string, fields: object, message: string): void {
    if (this.rateLimited.allow(key, Date.now())) this.options.logger.warn(fields, message);
  }
}

const ISOLFS_FSTYPE = 'fuse.isolfs';

/** A mount of our live connection (the device is unique to it), whatever file it shows. */
function isOurMount(mount: MountEntry, ourDevice: string): boolean {
  return mount.fstype === ISOLFS_FSTYPE && mount.device === ourDevice;
}

/** How long a statfs of a foreign isolfs mount may take before we call it alive (hung). */
const STATFS_TIMEOUT_MS = 2000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
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

function listPids(procRoot: string): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(procRoot);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of names) if (/^\d+$/.test(name)) pids.push(Number(name));
  return pids.sort((a, b) => a - b);
}

/** The inode of a process's mount namespace (stat follows the ns link), or null. */
function namespaceInode(procDir: string): number | null {
  try {
    return fs.statSync(path.join(procDir, 'ns', 'mnt')).ino;
  } catch {
    return null;
  }
}
