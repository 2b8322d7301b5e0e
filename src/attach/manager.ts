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
 * Each namespace looked at is first planned (plan.ts: reads only, returns what to do, including
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
import path from 'node:path';
import { attachFiles, AttachHelperError, type AttachResult } from './attach';
import { locateProcess } from '../identity/processCgroup';
import type { CgroupLocation } from '../cgroup/snapshot';
import { CONTAINERS_DIR, containerDirName, mountSourceName } from '../fuse/filesystem';
import { RateLimitedLog } from '../log';
import { findOwnMount, readMountinfo, realMountpointPath } from './mountinfo';
import { AttachPlanner, type AttachPlan, type OurDevices, type PlanRequest } from './plan';
import { listPids, namespaceInode } from './namespaces';
import type { AttachManagerOptions } from './managerOptions';

export type { AttachedContainers, AttachManagerOptions, ContainerTree } from './managerOptions';

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

/** One scan in progress: its number, our mount, whether it attaches, and what it did so far. */
interface ScanState {
  scan: number;
  ourDevices: OurDevices;
  attaching: boolean;
  helperRuns: number;
  report: ScanReport;
}

/** A namespace the helper was run for, and what is known of it. */
interface Applied {
  ns: number;
  pid: number;
  /** The container now attached there (NamespaceState.key). */
  key: string | null;
  /** The container under a prefix the namespace's process is in, when attaching. */
  matching: string | null;
  state: NamespaceState | undefined;
  runsInARow: number;
  plan: AttachPlan;
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
  private readonly realViewsMountpoint: string;
  private readonly planner: AttachPlanner;

  constructor(private readonly options: AttachManagerOptions) {
    this.ownMountNamespace = namespaceInode(path.join(options.procRoot, 'self'));
    this.maxPerScan = options.maxNamespacesPerScan ?? 50;
    this.verifyEveryScans = options.verifyEveryScans ?? VERIFY_EVERY_SCANS;
    this.ourSource = mountSourceName(options.mountpoint);
    this.realMountpoint = realMountpointPath(options.mountpoint);
    this.realViewsMountpoint = realMountpointPath(options.viewsMountpoint);
    this.planner = new AttachPlanner({
      mountpoint: options.mountpoint,
      viewsMountpoint: options.viewsMountpoint,
      procRoot: options.procRoot,
      ourSource: this.ourSource,
      statfs: options.statfs,
      statfsTimeoutMs: options.statfsTimeoutMs,
      warn: (key, fields, message) => this.warn(key, fields, message),
    });
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
    const report: ScanReport = { namespaces: 0, inspected: 0, repairedMounts: 0, attachedContainers: 0, failures: 0, durationMs: 0 };
    const scanNumber = ++this.scanCount;
    const ourDevices = this.ourDevices();
    if (ourDevices === null) {
      this.warn('no-mount', {}, 'our own mount is not in /proc/self/mountinfo: nothing to attach or repair');
      return report;
    }
    this.planner.startScan();
    const seen = new Set<number>();
    const attaching = this.options.prefixes.length > 0 && this.options.hostIsolated();
    const scan: ScanState = { scan: scanNumber, ourDevices, attaching, helperRuns: 0, report };
    const pids = listPids(this.options.procRoot);
    for (let i = 0; i < pids.length; i++) {
      if (i % YIELD_EVERY_PIDS === YIELD_EVERY_PIDS - 1) await yieldToEventLoop();
      const pid = pids[i];
      const ns = namespaceInode(path.join(this.options.procRoot, String(pid)));
      if (ns === null || ns === this.ownMountNamespace || seen.has(ns)) continue;
      seen.add(ns);
      report.namespaces++;
      await this.visit(scan, ns, pid);
    }
    this.forgetVanished(seen);
    report.durationMs = performance.now() - started;
    const level = report.repairedMounts > 0 || report.attachedContainers > 0 || report.failures > 0 ? 'info' : 'debug';
    this.options.logger[level]({ ...report }, 'attach scan');
    return report;
  }

  /** One namespace of a scan: looked at when due (within the scan's helper budget), planned, applied. */
  private async visit(scan: ScanState, ns: number, pid: number): Promise<void> {
    const state = this.handled.get(ns);
    // Only locate when it can matter: every scan while attaching (a process may have moved
    // into a container's cgroup since), otherwise when the namespace is looked at anyway.
    let location = scan.attaching ? this.locate(pid) : undefined;
    const matching = scan.attaching ? this.matchingKey(location ?? null) : null;
    const due = state === undefined || scan.scan >= state.verifyAtScan || (scan.attaching && matching !== state.key);
    if (!due || scan.helperRuns >= this.maxPerScan) return; // over the bound: still due next scan
    if (location === undefined) location = this.locate(pid);
    scan.report.inspected++;
    const key = scan.attaching ? matching : state?.key ?? null;
    const plan = await this.plan({ pid, location, attach: matching !== null, ourDevices: scan.ourDevices });
    if (plan.pairs.length === 0) {
      this.handled.set(ns, { key, verifyAtScan: scan.scan + this.verifyEveryScans, runsInARow: 0 });
      return;
    }
    scan.helperRuns++;
    const applied: Applied = { ns, pid, key, matching, state, runsInARow: (state?.runsInARow ?? 0) + 1, plan };
    try {
      this.recordApplied(scan, applied, await this.apply(plan));
    } catch (err) {
      this.recordHelperFailure(scan, applied, err);
    }
  }

  /** Counts a helper run's results, schedules the next look at its namespace, and logs it. */
  private recordApplied(scan: ScanState, applied: Applied, results: AttachResult[]): void {
    const { ns, pid, matching, runsInARow, plan } = applied;
    const { report } = scan;
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
    this.handled.set(ns, { key: applied.key, verifyAtScan: scan.scan + (soon ? 1 : this.verifyEveryScans), runsInARow });
    if (runsInARow > MAX_QUICK_RUNS) this.warn(`again:${ns}`, { pid, container: matching, runsInARow }, 'isolfs mounts keep disappearing from a container');
    this.options.logger.info({
      pid, container: matching, dir: matching === null ? undefined : containerDirName(matching),
      repaired: [...plan.repairTargets], attached: done, failed: failed.map((r) => `${r.target}: ${r.errno} ${r.message}`),
      detachedMounts: results.reduce((sum, r) => sum + (r.ok ? r.detachedMounts : 0), 0),
      again: applied.state !== undefined && applied.state.key === matching,
    }, plan.repairTargets.size > 0 ? 'repaired isolfs mounts in a container' : 'attached isolfs files into a container');
    if (!clean) this.warn(`failed:${ns}`, { pid, container: matching, failed: failed.map((r) => `${r.target}: ${r.errno}`) }, 'some files could not be attached');
  }

  private recordHelperFailure(scan: ScanState, applied: Applied, err: unknown): void {
    const { ns, pid } = applied;
    scan.report.failures++;
    const gone = err instanceof AttachHelperError && err.errno === 'ESRCH';
    if (gone) {
      // The process exited since we listed it: another of the namespace's, next scan.
      this.handled.delete(ns);
    } else {
      this.handled.set(ns, { key: applied.state?.key ?? null, verifyAtScan: scan.scan + this.verifyEveryScans, runsInARow: applied.runsInARow });
      this.warn(`helper:${ns}`, { pid, err: String(err) }, 'attach helper failed');
    }
  }

  /** What to do in one namespace, without doing any of it (see AttachPlanner.plan). */
  plan(request: PlanRequest): Promise<AttachPlan> {
    return this.planner.plan(request);
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
        const subtree = `/${CONTAINERS_DIR}/${containerDirName(key)}/`;
        const inSubtree = (source: string): boolean =>
          source.startsWith(this.options.mountpoint + subtree) || source.startsWith(this.options.viewsMountpoint + subtree);
        pairs = pairs.filter((p) => !inSubtree(p.source));
      }
    }
    return await attachFiles(this.options.helperPath, plan.pid, pairs);
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

  /** "major:minor" of our live mounts (both trees), from our own mountinfo; null if one is missing. */
  private ourDevices(): OurDevices | null {
    const mounts = readMountinfo(path.join(this.options.procRoot, 'self')) ?? [];
    const main = findOwnMount(mounts, this.ourSource, this.realMountpoint)?.device;
    const views = findOwnMount(mounts, this.ourSource, this.realViewsMountpoint)?.device;
    return main !== undefined && views !== undefined ? { main, 'container-views': views } : null;
  }

  private warn(key: string, fields: object, message: string): void {
    if (this.rateLimited.allow(key, Date.now())) this.options.logger.warn(fields, message);
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
