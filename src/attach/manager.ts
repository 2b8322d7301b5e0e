/**
 * Keeps containers' mounts of isolfs alive and, with --attach, puts them there.
 *
 * Work is done per mount namespace, through one of its processes:
 *
 * - repair (always on): a namespace holding an isolfs mount that is not our live connection
 *   (a previous daemon's, dead since it was killed: "Transport endpoint is not connected") gets
 *   each such mount replaced by a fresh one of the same file from our mount. This covers binds
 *   made at container creation from the shared hostPath files as well as attached ones, and the
 *   container keeps running.
 * - attach (--attach PREFIX, while the host switch is on): a namespace whose processes are in a
 *   cgroup starting with PREFIX gets the container's own copies (/containers/<key>/...) bound
 *   over /proc/... and /sys/devices/system/cpu/online, including /proc/vmstat, which runc refuses
 *   to bind at creation.
 *
 * How namespaces are found:
 * - events (cgroupWatch.ts): a new cgroup under a prefix, or a process moved into one, starts a
 *   few quick looks at just that cgroup's processes (lookSchedule.ts): a container started
 *   without a hook is attached within tens of milliseconds of its mount namespace appearing.
 * - the full scan, at start and every intervalMs (the safety net, default 30 s): lists every
 *   process's mount namespace (one representative, the lowest pid), looks at those new or due
 *   (a namespace done is looked at again every verifyEveryScans scans: mounts missing or not
 *   ours are attached again). This is also what repairs every container after a restart.
 * - attachNow(pid): on request (the OCI hook asks the daemon before the container starts).
 *
 * A look plans (plan.ts: reads mountinfo only, returns what to do, including which mounts to
 * detach from each target: mountsToDetach states the rule), then applies (apply(): creates the
 * container's subtree, tells the registry, runs the helper). Helper runs are batched
 * (attachBatch.ts: the namespaces ready meanwhile share one run, at most NAMESPACES_PER_RUN),
 * at most maxConcurrentAttaches runs at once (default 2 per CPU); looks run at most that many
 * times NAMESPACES_PER_RUN at once (a Limiter), one at a time per namespace.
 *
 * Why mountinfo rather than the helper's --check: mountinfo names the filesystem's device, which
 * tells our live connection from a previous daemon's dead one and from another FUSE filesystem
 * (--check only says whether a stat answers), and reading it costs no process and no FUSE request.
 *
 * The helper (isolfs-attach) stats its sources through our own mount, so it is only ever run
 * asynchronously: the event loop must stay free to answer those requests.
 */
import path from 'node:path';
import type { AttachResult } from './attach';
import { AttachBatcher } from './attachBatch';
import { locateProcess } from '../identity/processCgroup';
import type { CgroupLocation } from '../cgroup/snapshot';
import { CONTAINERS_DIR, containerDirName, mountSourceName } from '../fuse/filesystem';
import { RateLimitedLog } from '../log';
import { findOwnMount, readMountinfo, realMountpointPath } from './mountinfo';
import { AttachPlanner, type AttachPlan, type OurDevices, type PlanRequest } from './plan';
import { listPids, namespaceInode, readCgroupPids } from './namespaces';
import type { AttachManagerOptions } from './managerOptions';
import { Limiter, defaultHelperRuns } from './limiter';
import { CgroupWatch } from './cgroupWatch';
import { LookSchedule } from './lookSchedule';
import { type LookKind, type Pass, type ScanReport, Outcomes } from './outcomes';

export type { AttachedContainers, AttachManagerOptions, ContainerTree } from './managerOptions';
export type { ScanReport } from './outcomes';

/** How many scans pass between two looks at a namespace already handled. */
const VERIFY_EVERY_SCANS = 6;
/** Let FUSE requests in between: a node may have tens of thousands of processes. */
const YIELD_EVERY_PIDS = 256;
/** Namespaces one helper run attaches (attachBatch.ts): the looks ready meanwhile share a run. */
const NAMESPACES_PER_RUN = 32;
/** Our devices and the planner's verdicts on foreign connections are kept this long between scans. */
const PASS_CACHE_MS = 1000;

/** A namespace, the process it is looked at through, and that process's cgroup. */
interface NamespaceTarget {
  ns: number;
  pid: number;
  location: CgroupLocation | null;
  /** Where the container's / is in the process's root (PlanRequest.root; the OCI hook's rootfs). */
  root?: string;
}

/** What attachNow did. */
export type AttachNowResult =
  /** `attached`: targets bound by this call (empty: all were in place already); `failed`: targets that could not be. */
  | { outcome: 'attached'; container: string; attached: string[]; failed: { target: string; errno: string; message: string }[] }
  /** Nothing to do: the process is gone, shares our mount namespace, is not under a prefix, or
   *  attach is off (no prefix, or the host switch is off). `container`: its cgroup key when known. */
  | { outcome: 'skipped'; reason: 'process-gone' | 'own-namespace' | 'not-under-prefix' | 'not-attaching'; container: string | null }
  /** The helper could not run (its message), or our own mount is missing. */
  | { outcome: 'failed'; container: string | null; error: string };

export class AttachManager {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<ScanReport> | null = null;
  /** A look under way per namespace (by inode): at most one at a time there. */
  private readonly inflight = new Map<number, Promise<AttachResult[]>>();
  private readonly rateLimited = new RateLimitedLog(60_000);
  private readonly ownMountNamespace: number | null;
  private readonly verifyEveryScans: number;
  private readonly limiter: Limiter;
  private readonly batcher: AttachBatcher;
  private readonly outcomes: Outcomes;
  private scanCount = 0;
  private readonly ourSource: string;
  /** mountinfo shows paths with symlinks resolved. */
  private readonly realMountpoint: string;
  private readonly realViewsMountpoint: string;
  private readonly planner: AttachPlanner;
  /** Where container keys are directories (v1 memory, or cgroup2); null: no watching. */
  private readonly keyHierarchy: string | null;
  private readonly watch: CgroupWatch | null;
  private readonly looks: LookSchedule | null;
  private passCache: { devices: OurDevices | null; atMs: number } = { devices: null, atMs: Number.NEGATIVE_INFINITY };

  constructor(private readonly options: AttachManagerOptions) {
    this.ownMountNamespace = namespaceInode(path.join(options.procRoot, 'self'));
    this.verifyEveryScans = options.verifyEveryScans ?? VERIFY_EVERY_SCANS;
    const helperRuns = options.maxConcurrentAttaches ?? defaultHelperRuns();
    this.batcher = new AttachBatcher({ helperPath: options.helperPath, maxRuns: helperRuns, maxNamespaces: NAMESPACES_PER_RUN });
    // Enough looks at once to fill every helper run.
    this.limiter = new Limiter(helperRuns * NAMESPACES_PER_RUN);
    this.ourSource = mountSourceName(options.mountpoint);
    this.realMountpoint = realMountpointPath(options.mountpoint);
    this.realViewsMountpoint = realMountpointPath(options.viewsMountpoint);
    const warn = this.warn.bind(this);
    this.planner = new AttachPlanner({
      mountpoint: options.mountpoint, viewsMountpoint: options.viewsMountpoint, procRoot: options.procRoot, ourSource: this.ourSource,
      statfs: options.statfs, statfsTimeoutMs: options.statfsTimeoutMs, warn,
    });
    this.outcomes = new Outcomes({ logger: options.logger, verifyEveryScans: this.verifyEveryScans, warn });
    const { hierarchy } = options;
    this.keyHierarchy = hierarchy.v1.get('memory') ?? hierarchy.unifiedRoot;
    const watching = options.watch !== false && options.prefixes.length > 0 && this.keyHierarchy !== null;
    this.looks = watching ? new LookSchedule({
      look: (key, startedMs) => this.lookAtCgroup(key, startedMs),
      delaysMs: options.lookDelaysMs,
      overflow: (key) => this.warn('looks-full', { container: key }, 'too many new containers at once: the rest are attached by the periodic scan'),
    }) : null;
    this.watch = watching && this.keyHierarchy !== null
      ? new CgroupWatch({ hierarchyRoot: this.keyHierarchy, prefixes: options.prefixes, onActivity: (key) => this.looks?.start(key), warn, covered: (key) => (options.containers.tenantOf?.(key) ?? key) !== key })
      : null;
  }

  /** Watches for new containers, scans now, then every intervalMs. */
  start(): void {
    if (this.timer !== null) return;
    this.watch?.start();
    void this.scan();
    this.timer = setInterval(() => void this.scan(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.watch?.stop();
    this.looks?.stop();
  }

  /** Directories watched for new containers (0: event-driven discovery is off). */
  get watchedCgroups(): number {
    return this.watch?.watched ?? 0;
  }

  /** One full scan; concurrent calls share the one in progress. */
  scan(): Promise<ScanReport> {
    if (this.running === null) {
      this.running = this.scanOnce().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  /**
   * Attaches the container of `pid` now, if its cgroup is under a prefix (and repairs any dead
   * mount of ours there), and answers when the helper is done. Then looks at the container's
   * cgroup again a few times (a runtime's pivot_root throws away what was attached before it).
   * `root`: the rootfs path while the runtime has not yet switched to it (the OCI hook, before
   * pivot_root), so that the binds are made where pivot_root keeps them. Never rejects.
   */
  async attachNow(pid: number, { root }: { root?: string } = {}): Promise<AttachNowResult> {
    if (!(Number.isInteger(pid) && pid > 0)) return { outcome: 'skipped', reason: 'process-gone', container: null };
    const ns = namespaceInode(path.join(this.options.procRoot, String(pid)));
    const location = ns === null ? null : this.locate(pid);
    if (ns === null || location === null) return { outcome: 'skipped', reason: 'process-gone', container: null };
    if (ns === this.ownMountNamespace) return { outcome: 'skipped', reason: 'own-namespace', container: location.key };
    const pass = this.newPass(false);
    if (pass === null) return { outcome: 'failed', container: location.key, error: 'our own mount is not in /proc/self/mountinfo' };
    if (!pass.attaching) return { outcome: 'skipped', reason: 'not-attaching', container: location.key };
    const matching = this.matchingKey(location);
    if (matching === null) return { outcome: 'skipped', reason: 'not-under-prefix', container: location.key };
    try {
      const results = await this.visit(pass, { ns, pid, location, root }, 'now');
      // Then a few quick looks (a runtime's pivot_root may throw the mounts away), attached now or not.
      this.looks?.start(matching);
      return {
        outcome: 'attached', container: matching,
        attached: results.filter((r) => r.ok).map((r) => r.target),
        failed: results.flatMap((r) => (r.ok ? [] : [{ target: r.target, errno: r.errno, message: r.message }])),
      };
    } catch (err) {
      return { outcome: 'failed', container: matching, error: String(err) };
    }
  }

  private async scanOnce(): Promise<ScanReport> {
    const pass = this.newPass(true);
    if (pass === null) {
      this.warn('no-mount', {}, 'our own mount is not in /proc/self/mountinfo: nothing to attach or repair');
      return Outcomes.emptyReport();
    }
    const seen = new Set<number>();
    const visits: Promise<unknown>[] = [];
    const pids = listPids(this.options.procRoot);
    for (let i = 0; i < pids.length; i++) {
      if (i % YIELD_EVERY_PIDS === YIELD_EVERY_PIDS - 1) await yieldToEventLoop();
      const visit = this.scanProcess(pass, pids[i], seen);
      if (visit !== null) visits.push(visit);
    }
    await Promise.all(visits);
    this.outcomes.forgetVanished(seen);
    return this.outcomes.finish(pass, 'attach scan');
  }

  /** A scan's process: the first of its namespace and due is looked at (the visit, not awaited). */
  private scanProcess(pass: Pass, pid: number, seen: Set<number>): Promise<unknown> | null {
    const ns = namespaceInode(path.join(this.options.procRoot, String(pid)));
    if (ns === null || ns === this.ownMountNamespace || seen.has(ns)) return null;
    seen.add(ns);
    pass.report.namespaces++;
    // While cgroups are watched, a process moving into a container's cgroup is an event (a write
    // to its cgroup.procs): a namespace known and not due costs the scan one stat, no more.
    if (this.watch !== null && this.outcomes.knownAndNotDue(pass, ns)) return null;
    // Otherwise locate when it can matter: every scan while attaching (a process may have moved
    // into a container's cgroup since), else when the namespace is looked at anyway.
    const location = pass.attaching ? this.locate(pid) : undefined;
    if (!this.outcomes.due(pass, ns, pass.attaching ? this.matchingKey(location ?? null) : null)) return null;
    return this.visit(pass, { ns, pid, location: location ?? this.locate(pid) }, 'scan').catch(() => undefined);
  }

  /**
   * One look of the event-driven path: every namespace of the cgroup's processes (lookSchedule.ts).
   * True (the series ends) when every one was already in place before the series began.
   */
  private async lookAtCgroup(key: string, startedMs: number): Promise<boolean> {
    if (this.keyHierarchy === null) return true;
    const pass = this.newPass(false);
    if (pass === null || !pass.attaching) return true;
    const seen = new Set<number>();
    const visits: Promise<unknown>[] = [];
    for (const pid of readCgroupPids(this.keyHierarchy + key)) {
      const ns = namespaceInode(path.join(this.options.procRoot, String(pid)));
      // The daemon's own namespace: a runtime joined the cgroup and has not yet unshared.
      if (ns === null || ns === this.ownMountNamespace || seen.has(ns)) continue;
      const location = this.locate(pid);
      if (this.matchingKey(location) === null) continue;
      seen.add(ns);
      pass.report.namespaces++;
      visits.push(this.visit(pass, { ns, pid, location }, 'look').catch(() => undefined));
    }
    await Promise.all(visits);
    if (pass.report.inspected > 0) this.outcomes.finish(pass, 'attach look');
    return seen.size > 0 && [...seen].every((ns) => this.outcomes.settledBefore(ns, key, startedMs));
  }

  /**
   * One look at one namespace, one at a time per namespace, within the concurrency bound. A scan
   * or a look finding one under way leaves it be; attachNow waits for it and looks again.
   */
  private async visit(pass: Pass, target: NamespaceTarget, kind: LookKind): Promise<AttachResult[]> {
    const { ns, pid, location, root } = target;
    const pending = this.inflight.get(ns);
    if (pending !== undefined) {
      if (kind !== 'now') return [];
      await pending.catch(() => undefined);
    }
    const matching = pass.attaching ? this.matchingKey(location) : null;
    const run = this.limiter.run(async () => {
      const state = this.outcomes.state(ns);
      // A look of the event schedule skips a namespace whose mounts keep vanishing (slow retries only).
      if (kind === 'look' && !this.outcomes.quickLookAllowed(ns, matching) && !this.outcomes.due(pass, ns, matching)) return [];
      pass.report.inspected++;
      const plan = await this.plan({ pid, location, attach: matching !== null, ourDevices: pass.ourDevices, root });
      return await this.outcomes.record(pass, { ns, pid, matching, state, plan }, () => this.apply(plan));
    });
    this.inflight.set(ns, run);
    try {
      return await run;
    } finally {
      if (this.inflight.get(ns) === run) this.inflight.delete(ns);
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
      const mayAttach = this.options.containers.mayAttach?.(key) ?? true; // per attached container, a bounded number below it
      if (mayAttach && this.options.tree.addContainer(key)) this.options.containers.markAttached(plan.container);
      else {
        this.warn(`key:${key}`, { container: key }, mayAttach ? 'not a cgroup path: not attaching its copies' : 'too many containers attached below one attached container: not attaching its copies');
        const subtree = `/${CONTAINERS_DIR}/${containerDirName(key)}/`;
        const inSubtree = (source: string): boolean =>
          source.startsWith(this.options.mountpoint + subtree) || source.startsWith(this.options.viewsMountpoint + subtree);
        pairs = pairs.filter((p) => !inSubtree(p.source));
      }
    }
    return await this.batcher.attach(plan.pid, pairs, plan.root);
  }

  /**
   * A scan, a look or attachNow: our mount's devices and whether to attach. A scan reads our
   * mountinfo afresh and asks foreign connections afresh; the quick looks reuse both for a second.
   */
  private newPass(isScan: boolean): Pass | null {
    const now = performance.now();
    if (isScan || now - this.passCache.atMs > PASS_CACHE_MS) {
      this.passCache = { devices: this.ourDevices(), atMs: now };
      this.planner.startScan();
    }
    const ourDevices = this.passCache.devices;
    if (ourDevices === null) return null;
    const attaching = this.options.prefixes.length > 0 && this.options.hostIsolated();
    return { scan: isScan ? ++this.scanCount : this.scanCount, ourDevices, attaching, report: Outcomes.emptyReport(), startedMs: now };
  }

  private matchingKey(location: CgroupLocation | null): string | null {
    if (!location || location.key === '/') return null;
    return this.options.prefixes.some((p) => location.key.startsWith(p)) ? location.key : null;
  }

  private locate(pid: number): CgroupLocation | null {
    const found = locateProcess(this.options.procRoot, this.options.hierarchy, pid);
    return found.found ? found.location : null;
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
