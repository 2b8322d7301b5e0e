/**
 * Wiring: checks the machine, builds the pieces and connects them in the one direction data
 * flows (request -> identity -> switches -> snapshot -> view -> bytes). Owns start and stop.
 */
import type { IsolfsFilesystem } from './fuse/filesystem';
import { loadNative, type LoopMode, type NativeAddon } from './fuse/native';
import { cgroupKeyExists, discoverHierarchy, type CgroupHierarchy } from './cgroup/hierarchy';
import { SwitchStore } from './switches/store';
import type { LoadavgSampler } from './loadavg/sampler';
import { ContainerRegistry, cgroupDirsOf, type ContainerRecord, type DropReason } from './containers/registry';
import type { IsolfsBackend } from './backend';
import type { Logger } from './log';
import type { Metrics } from './health/metrics';
import { AttachManager } from './attach/manager';
import { defaultAttachHelperPath } from './attach/attach';
import { attachForHook } from './attach/hookAttach';
import { startHookServer, type HookServer } from './attach/hookServer';
import type { HealthServer, MountCheck } from './health/server';
import { HEALTHY, type WatchdogVerdict } from './health/watchdog';
import { type RunningWatchdog, startWatchdog } from './health/startWatchdog';
import { newBackend, newSampler } from './parts';
import { heldCgroupFiles } from './host/heldFiles';
import { checkMachine, joinHostCgroupNamespace, mountFilesystem, mountViews, ownDevice, StartupError, startupStep, viewsMountGone } from './startup';

export interface DaemonOptions {
  mountpoint: string;
  /** Where the container-views tree goes when attach or repair runs (created if missing). */
  viewsMountpoint: string;
  procRoot: string;
  sysRoot: string;
  cgroupRoot: string;
  stateDir: string;
  /** --host-isolated; undefined = the persisted value, or on for a first start. */
  hostIsolated: boolean | undefined;
  loop: LoopMode;
  loadavgIntervalMs: number;
  /** Join the host's cgroup namespace (via <procRoot>/1/ns/cgroup) when ours differs. */
  joinHostCgroupNamespace: boolean;
  /** --http HOST:PORT for /healthz, /readyz and /metrics; undefined = no endpoint. */
  http?: string;
  /** --attach PREFIX...: attach per-container files into containers under these cgroups. */
  attachPrefixes: string[];
  attachIntervalMs: number;
  /** --attach-concurrency: attach helper runs at once (default: AttachManager's, 2 per CPU). */
  attachConcurrency?: number;
  /** --hook-socket: where the OCI hook asks for an attach (with --attach); null = not served. */
  hookSocket: string | null;
  /** Replace containers' dead isolfs mounts (a previous daemon's) with fresh ones. */
  repairMounts: boolean;
  /** --max-open-files: open handles past this many are answered ENFILE. */
  maxOpenFiles: number;
  /** --max-open-files-per-container: one tenant's open handles past this many are answered ENFILE. */
  maxOpenFilesPerContainer?: number;
  /** --watchdog-abort-ms: a probe unanswered, or the main thread silent, this long aborts (a third: unhealthy). */
  watchdogAbortMs: number;
}

/** How long a container may go unread before its record is dropped (an attached one: kept until its cgroup goes). */
const CONTAINER_IDLE_MS = 10 * 60_000;
/**
 * The registry's sweep checks at most 2000 records (one stat each), going on from where the
 * last one stopped: a record is checked every ceil(records / 2000) sweeps, so an attached
 * container's subtree goes (and a recreated cgroup gets a fresh record) within 2 s of the
 * change up to 2000 records, within 10 s at the 10,000-record cap (later only if more are
 * attached). 1000 stats cost 6-7 ms of CPU on a 2-CPU machine at load 8
 * (bench/registry-sweep.js): a sweep costs at most ~13 ms, 0.7% of a CPU at this cadence.
 */
const SWEEP_INTERVAL_MS = 2000;
/** Switch entries of vanished cgroups are persisted state: forgotten at a slower pace. */
const SWITCH_SWEEP_INTERVAL_MS = 60_000;
/** A stop that has not ended the process by then (stuck in native code) is ended by the watchdog's deadman thread. */
const SHUTDOWN_KILL_AFTER_MS = 6000;
/** A closing health endpoint may wait this long for in-flight answers. */
const HEALTH_CLOSE_MS = 1000;

/** What start() built, handed to the instance in one piece. */
export interface DaemonParts {
  options: DaemonOptions;
  logger: Logger;
  filesystem: IsolfsFilesystem;
  /** The container-views tree: mounted when attach or repair runs. */
  views: IsolfsFilesystem | null;
  backend: IsolfsBackend;
  switches: SwitchStore;
  sampler: LoadavgSampler;
  containers: ContainerRegistry;
  metrics: Metrics | null;
  hierarchy: CgroupHierarchy;
}

export class Daemon {
  readonly options: DaemonOptions;
  readonly logger: Logger;
  readonly filesystem: IsolfsFilesystem;
  readonly views: IsolfsFilesystem | null;
  readonly backend: IsolfsBackend;
  readonly switches: SwitchStore;
  readonly sampler: LoadavgSampler;
  readonly containers: ContainerRegistry;
  readonly metrics: Metrics | null;
  readonly hierarchy: CgroupHierarchy;
  private readonly sweepTimer: NodeJS.Timeout;
  private lastSwitchSweepMs = 0;
  private stopped = false;
  private health: HealthServer | null = null;
  private hook: HookServer | null = null;
  private readonly attachManager: AttachManager | null;
  private readonly watchdog: RunningWatchdog;
  /** The watchdog's latest verdict (healthy until it says otherwise). */
  private verdict: WatchdogVerdict = HEALTHY;
  /** Called when the mount became unusable (the watchdog has logged why); cli.ts exits non-zero. */
  onFatal: (reason: string) => void = exitOnFatal;

  /** Starts what runs beside the mount: the watchdog, attach (when asked for), the sweep. */
  private constructor(parts: DaemonParts, native: NativeAddon, devices: { main: string; views: string | null }) {
    this.options = parts.options;
    this.logger = parts.logger;
    this.filesystem = parts.filesystem;
    this.views = parts.views;
    this.backend = parts.backend;
    this.switches = parts.switches;
    this.sampler = parts.sampler;
    this.containers = parts.containers;
    this.metrics = parts.metrics;
    this.hierarchy = parts.hierarchy;
    this.watchdog = startWatchdog({
      native,
      device: devices.main,
      otherDevices: devices.views === null ? [] : [devices.views],
      mountpoint: this.options.mountpoint,
      abortMs: this.options.watchdogAbortMs,
      logger: this.logger,
      onVerdict: (verdict) => { this.verdict = verdict; },
      onExit: (reason) => this.onFatal(reason),
    });
    this.attachManager = this.startAttachManager();
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
  }

  static start(options: DaemonOptions, logger: Logger): Daemon {
    checkMachine(options.mountpoint, logger);
    const native = loadNative();
    if (options.joinHostCgroupNamespace) joinHostCgroupNamespace(native, options.procRoot, logger);
    const hierarchy = startupStep(`cgroup hierarchy under ${options.cgroupRoot}`, () => discoverHierarchy(options.cgroupRoot));
    const switches = startupStep(`switch state in ${options.stateDir}`, () => SwitchStore.open(options.stateDir, logger, options.hostIsolated));
    // biome-ignore lint/style/noCommonJs: only with someone to scrape them: metrics cost per request, prom-client ~2 MB RSS.
    const metricsModule = options.http === undefined ? null : (require('./health/metrics') as typeof import('./health/metrics'));
    const metrics = metricsModule && new metricsModule.Metrics({ containersTracked: () => containers.size });
    const containers = new ContainerRegistry({
      idleMs: CONTAINER_IDLE_MS,
      onCreate: metrics ? () => metrics.containerTracked() : undefined,
      onDrop: (record, why) => dropContainer(record, why),
    });
    const sampler = newSampler(options, containers, metrics, logger);
    const backend = newBackend({ options, logger, hierarchy, switches, containers, metrics, sampler });
    metrics?.setSwitches(switches.hostIsolated, switches.optedOutCount);
    const filesystem = mountFilesystem(native, backend, options, logger);
    const views = mountViews(filesystem, { native, backend, options, logger });
    // The one place a container's subtree is removed: when its record is dropped (a recreated
    // cgroup's record is renewed in place, not dropped: the subtree serves the new container).
    const dropContainer = (record: ContainerRecord, why: DropReason): void => {
      if (record.attachedLocation !== null) {
        filesystem.removeContainer(record.key);
        views?.removeContainer(record.key);
      }
      heldCgroupFiles.release(cgroupDirsOf(record));
      record.taskStatFiles?.closeAll();
      logger.debug({ container: record.key, why, attached: record.attachedLocation !== null }, 'container dropped');
    };
    const device = ownDevice(options.mountpoint);
    if (device === null) {
      views?.unmount();
      filesystem.unmount();
      throw new StartupError(`mounted ${options.mountpoint} but cannot find the mount in /proc/self/mountinfo`);
    }
    sampler.start();
    const devices = { main: device, views: views === null ? null : ownDevice(options.viewsMountpoint, options.mountpoint) };
    const daemon = new Daemon({ options, logger, filesystem, views, backend, switches, sampler, containers, metrics, hierarchy }, native, devices);
    logger.info({
      mountpoint: options.mountpoint, viewsMountpoint: views ? options.viewsMountpoint : undefined,
      loop: options.loop, hostIsolated: switches.hostIsolated,
      cgroupV1: [...hierarchy.v1.keys()], cgroupV2: hierarchy.unifiedRoot, libfuse: native.libfuseVersion(),
    }, 'isolfs serving');
    return daemon;
  }

  /** With --attach or --repair-mounts: keeps containers' mounts of isolfs alive (attach/manager.ts). */
  private startAttachManager(): AttachManager | null {
    const { options, filesystem, views } = this;
    if (views === null) return null; // mounted exactly when attach or repair runs
    const manager = new AttachManager({
      mountpoint: options.mountpoint,
      viewsMountpoint: options.viewsMountpoint,
      procRoot: options.procRoot,
      hierarchy: this.hierarchy,
      helperPath: defaultAttachHelperPath(),
      prefixes: options.attachPrefixes,
      intervalMs: options.attachIntervalMs,
      maxConcurrentAttaches: options.attachConcurrency,
      hostIsolated: () => this.switches.hostIsolated,
      // A container's subtree is in both trees: its views in one, its control files in the other.
      tree: { addContainer: (key) => filesystem.addContainer(key) && views.addContainer(key) },
      containers: this.containers,
      logger: this.logger,
    });
    manager.start();
    return manager;
  }

  /**
   * Starts the --http endpoint. Separate from start() because listening is asynchronous; a
   * failure here (port taken, bad address) is a start-up error like a busy mountpoint.
   */
  async serveHealth(): Promise<void> {
    if (this.options.http === undefined || this.metrics === null) return;
    try {
      // biome-ignore lint/style/noCommonJs: loaded with --http only (see start()).
      const { startHealthServer } = require('./health/server') as typeof import('./health/server');
      this.health = await startHealthServer({
        listen: this.options.http,
        checkMount: async () => this.mountCheck(),
        isReady: () => !this.stopped && this.verdict.ready,
        metrics: this.metrics,
        logger: this.logger,
      });
    } catch (err) {
      throw new StartupError(`cannot serve --http ${this.options.http}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** With --attach: the OCI hook's socket (attach/hookServer.ts); not listening is a start-up error. */
  async serveHook(): Promise<void> {
    const { options, attachManager: manager } = this;
    if (options.hookSocket === null || manager === null || options.attachPrefixes.length === 0) return;
    const attachOptions = { manager, procRoot: options.procRoot };
    try {
      this.hook = await startHookServer({ socketPath: options.hookSocket, logger: this.logger, attach: (request) => attachForHook(attachOptions, request) });
    } catch (err) {
      throw new StartupError(`cannot serve --hook-socket ${options.hookSocket}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** /healthz: the watchdog's latest look (at most a couple of seconds old), or that we are stopping. */
  private mountCheck(): MountCheck {
    if (this.stopped) return { ok: false, detail: 'shutting down' };
    return { ok: this.verdict.healthy, detail: this.verdict.reason };
  }

  /** Drops containers idle or gone (the registry's one sweep), and switch entries whose cgroup is gone. */
  sweep(): void {
    try {
      // Gone from under us (umount from outside), attached files would fall back to the host's:
      // exit, as for the main mount, so that the restarted daemon mounts afresh and repairs.
      if (this.views && !this.stopped && viewsMountGone(this.options)) {
        this.logger.error({ viewsMountpoint: this.options.viewsMountpoint }, 'the container-views mount is gone (unmounted from outside): exiting');
        this.onFatal('views mount gone');
        return;
      }
      const nowMs = Date.now();
      this.containers.sweep(nowMs);
      if (nowMs - this.lastSwitchSweepMs < SWITCH_SWEEP_INTERVAL_MS) return;
      this.lastSwitchSweepMs = nowMs;
      const gone = this.switches.containerKeys().filter((key) => !cgroupKeyExists(this.hierarchy, key));
      if (gone.length > 0) {
        this.switches.forget(gone);
        this.logger.info({ containers: gone }, 'forgot switch entries of containers whose cgroup is gone');
      }
    } catch (err) {
      this.logger.error({ err: String(err) }, 'sweep failed');
    }
  }

  /**
   * Stops serving: everything synchronous first (so a caller that must exit at once has
   * unmounted), then waits, bounded, for the health endpoint to close.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.sweepTimer);
    this.watchdog.stop(SHUTDOWN_KILL_AFTER_MS);
    this.attachManager?.stop();
    this.sampler.stop();
    this.views?.unmount();
    this.filesystem.unmount();
    this.logger.info({ mountpoint: this.options.mountpoint }, 'unmounted');
    const hookClosed = this.hook?.close(); // removes the socket at once: hooks fail fast from now on
    if (this.health) await withTimeout(this.health.close(), HEALTH_CLOSE_MS);
    if (hookClosed !== undefined) await withTimeout(hookClosed, HEALTH_CLOSE_MS);
  }
}

function withTimeout(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); });
  return Promise.race([work.then(() => undefined, () => undefined), timeout]).finally(() => clearTimeout(timer));
}

/** The default onFatal: the process ends non-zero (cli.ts replaces it with an orderly stop). */
function exitOnFatal(): void {
  process.exit(1);
}
