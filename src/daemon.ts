/**
 * Wiring: checks the machine, builds the pieces and connects them in the one direction data
 * flows (request -> identity -> switches -> snapshot -> view -> bytes). Owns start and stop.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { IsolfsFilesystem, mountSourceName } from './fuse/filesystem';
import { loadNative, type LoopMode, type NativeAddon } from './fuse/native';
import { cgroupKeyExists, discoverHierarchy, type CgroupHierarchy } from './cgroup/hierarchy';
import { readTaskCounts } from './cgroup/read';
import { parseCpuinfo } from './host/cpuinfo';
import { readBoundedText } from './host/boundedRead';
import { StateFileError, SwitchStore } from './switches/store';
import { EnvOptOut } from './switches/envOptOut';
import { LoadavgSampler } from './loadavg/sampler';
import { TimedCache, type HostSources } from './files';
import { ContainerRegistry, type ContainerRecord, type DropReason } from './containers/registry';
import { IsolfsBackend } from './backend';
import type { Logger, LogLevel } from './log';
import { Metrics } from './health/metrics';
import { AttachManager } from './attach/manager';
import { defaultAttachHelperPath } from './attach/attach';
import { startHealthServer, type HealthServer, type MountCheck } from './health/server';
import { HEALTHY, type WatchdogVerdict } from './health/watchdog';
import type { WatchdogCommand, WatchdogMessage, WatchdogWorkerData } from './health/watchdogWorker';
import { findOwnMount, readMountinfo, realMountpointPath } from './attach/mountinfo';

export interface DaemonOptions {
  mountpoint: string;
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
  /** Replace containers' dead isolfs mounts (a previous daemon's) with fresh ones. */
  repairMounts: boolean;
  /** --max-open-files: open handles past this many are answered ENFILE. */
  maxOpenFiles: number;
  /** --watchdog-abort-ms: a probe unanswered this long aborts the connection (a third: unhealthy). */
  watchdogAbortMs: number;
}

/** A start-up problem an operator can fix; printed as one line, exit status 1. */
export class StartupError extends Error {}

/** How long a container may go unread before its record is dropped (an attached one: kept until its cgroup goes). */
const CONTAINER_IDLE_MS = 10 * 60_000;
/**
 * The registry's sweep: an attached container's subtree goes within 2 s of its cgroup. A sweep
 * is one stat per record: 6-7 ms of CPU for 1000 records on a 2-CPU machine at load 8
 * (bench/registry-sweep.js), so 0.3% of a CPU at this cadence.
 */
const SWEEP_INTERVAL_MS = 2000;
/** Switch entries of vanished cgroups are persisted state: forgotten at a slower pace. */
const SWITCH_SWEEP_INTERVAL_MS = 60_000;
/** /proc/cpuinfo is ~1.5 KiB per CPU: this fits ~2,700 CPUs. */
const CPUINFO_MAX_BYTES = 4 * 1024 * 1024;
/** Watchdog: a look every 2 s (at most a tenth of the abort time), and a second between verdict and exit. */
const WATCHDOG_INTERVAL_MS = 2000;
const WATCHDOG_EXIT_GRACE_MS = 1000;
/** The watchdog thread ends the process itself when the main thread has not exited by then. */
const FORCE_EXIT_AFTER_MS = 10_000;
/** The watchdog thread holds a few small objects: a small heap is plenty. */
const WATCHDOG_HEAP = { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 };
/** A stop that has not ended the process by then (stuck in native code) is ended by the watchdog thread. */
const SHUTDOWN_KILL_AFTER_MS = 6000;
/** A closing health endpoint may wait this long for in-flight answers. */
const HEALTH_CLOSE_MS = 1000;

export class Daemon {
  private sweepTimer: NodeJS.Timeout | null = null;
  private lastSwitchSweepMs = 0;
  private stopped = false;
  private health: HealthServer | null = null;
  private attachManager: AttachManager | null = null;
  private watchdog: Worker | null = null;
  /** The watchdog's latest verdict (healthy until it says otherwise). */
  private verdict: WatchdogVerdict = HEALTHY;
  /** Called when the mount became unusable (the watchdog has logged why); cli.ts exits non-zero. */
  onFatal: (reason: string) => void = () => process.exit(1);

  private constructor(
    readonly options: DaemonOptions,
    readonly logger: Logger,
    readonly filesystem: IsolfsFilesystem,
    readonly backend: IsolfsBackend,
    readonly switches: SwitchStore,
    readonly sampler: LoadavgSampler,
    readonly containers: ContainerRegistry,
    readonly metrics: Metrics | null,
    readonly hierarchy: CgroupHierarchy,
  ) {}

  static start(options: DaemonOptions, logger: Logger): Daemon {
    checkMachine(options, logger);
    const native = loadNative();
    if (options.joinHostCgroupNamespace) joinHostCgroupNamespace(native, options.procRoot, logger);
    const hierarchy = startupStep(`cgroup hierarchy under ${options.cgroupRoot}`, () => discoverHierarchy(options.cgroupRoot));
    const switches = startupStep(`switch state in ${options.stateDir}`, () => SwitchStore.open(options.stateDir, logger, options.hostIsolated));
    const containers = new ContainerRegistry({
      idleMs: CONTAINER_IDLE_MS,
      onDrop: (record, why) => dropContainer(record, why),
    });
    // Metrics cost a little on every request: only keep them when someone can scrape them.
    const metrics = options.http === undefined ? null : new Metrics();
    const maxTasksPerRead = 20_000;
    const sampler = new LoadavgSampler({
      intervalMs: options.loadavgIntervalMs,
      onTick: metrics ? (stats) => metrics.observeSamplerTick(stats.durationLastTickMs / 1000) : undefined,
      containers: () => containers.all(),
      countTasks: (record) => {
        try {
          return readTaskCounts(record.location, options.procRoot, maxTasksPerRead);
        } catch {
          return null; // the cgroup is gone: the registry's sweep drops it
        }
      },
    });
    const sources: HostSources = {
      procRoot: options.procRoot,
      sysRoot: options.sysRoot,
      userHz: 100,
      pageSizeBytes: 4096n,
      maxTasksPerRead,
      sampler,
      // /proc/cpuinfo is expensive for the kernel to produce (it asks every CPU for its clock)
      // and barely changes: one read per second serves every container.
      cpuinfoCache: new TimedCache(1000, () => parseCpuinfo(readBoundedText(options.procRoot, 'cpuinfo', CPUINFO_MAX_BYTES))),
    };
    const backend = new IsolfsBackend({
      procRoot: options.procRoot,
      sysRoot: options.sysRoot,
      hierarchy,
      switches,
      envOptOut: new EnvOptOut(options.procRoot),
      sources,
      containers,
      logger,
      onRequest: metrics ? (file, result, seconds) => metrics.observeRequest(file, result, seconds) : undefined,
      onContainerSeen: metrics ? (key) => metrics.containerSeen(key) : undefined,
      onSwitchChange: metrics ? () => metrics.setSwitches(switches.hostIsolated, switches.optedOutCount) : undefined,
    });
    metrics?.setSwitches(switches.hostIsolated, switches.optedOutCount);
    const filesystem = new IsolfsFilesystem(native, backend, {
      maxOpenHandles: options.maxOpenFiles,
      // Called at most every few seconds by the filesystem, with the opens refused meanwhile.
      onLimit: (refused) => logger.warn({ maxOpenFiles: options.maxOpenFiles, refused }, 'open-file limit reached: answering ENFILE'),
    });
    try {
      filesystem.mount(options.mountpoint, options.loop);
    } catch (err) {
      throw new StartupError(`cannot mount ${options.mountpoint}: ${(err as Error).message}`);
    }
    // The one place a container's subtree is removed: when its record is dropped.
    const dropContainer = (record: ContainerRecord, why: DropReason): void => {
      if (record.attachedLocation !== null) filesystem.removeContainer(record.key);
      logger.debug({ container: record.key, why, attached: record.attachedLocation !== null }, 'container dropped');
    };
    const device = ownDevice(options.mountpoint);
    if (device === null) {
      filesystem.unmount();
      throw new StartupError(`mounted ${options.mountpoint} but cannot find the mount in /proc/self/mountinfo`);
    }
    sampler.start();
    const daemon = new Daemon(options, logger, filesystem, backend, switches, sampler, containers, metrics, hierarchy);
    daemon.watchdog = daemon.startWatchdog(device);
    if (options.repairMounts || options.attachPrefixes.length > 0) {
      daemon.attachManager = new AttachManager({
        mountpoint: options.mountpoint,
        procRoot: options.procRoot,
        hierarchy,
        helperPath: defaultAttachHelperPath(),
        prefixes: options.attachPrefixes,
        intervalMs: options.attachIntervalMs,
        hostIsolated: () => switches.hostIsolated,
        tree: filesystem,
        containers,
        logger,
      });
      daemon.attachManager.start();
    }
    daemon.sweepTimer = setInterval(() => daemon.sweep(), SWEEP_INTERVAL_MS);
    daemon.sweepTimer.unref();
    logger.info({
      mountpoint: options.mountpoint, loop: options.loop, hostIsolated: switches.hostIsolated,
      cgroupV1: [...hierarchy.v1.keys()], cgroupV2: hierarchy.unifiedRoot, libfuse: native.libfuseVersion(),
    }, 'isolfs serving');
    return daemon;
  }

  /**
   * Starts the --http endpoint. Separate from start() because listening is asynchronous; a
   * failure here (port taken, bad address) is a start-up error like a busy mountpoint.
   */
  async serveHealth(): Promise<void> {
    if (this.options.http === undefined || this.metrics === null) return;
    try {
      this.health = await startHealthServer({
        listen: this.options.http,
        checkMount: async () => this.mountCheck(),
        isReady: () => !this.stopped && this.verdict.ready,
        metrics: this.metrics,
        logger: this.logger,
      });
    } catch (err) {
      throw new StartupError(`cannot serve --http ${this.options.http}: ${(err as Error).message}`);
    }
  }

  /** /healthz: the watchdog's latest look (at most a couple of seconds old), or that we are stopping. */
  private mountCheck(): MountCheck {
    if (this.stopped) return { ok: false, detail: 'shutting down' };
    return { ok: this.verdict.healthy, detail: this.verdict.reason };
  }

  /**
   * The watchdog runs in a thread of its own (health/watchdogWorker.ts): it must still act
   * when this thread is the one stuck. Its verdicts come here for /healthz and /readyz.
   */
  private startWatchdog(device: string): Worker {
    const data: WatchdogWorkerData = {
      options: {
        device,
        intervalMs: Math.min(WATCHDOG_INTERVAL_MS, Math.floor(this.options.watchdogAbortMs / 10)),
        wedgedAfterMs: Math.floor(this.options.watchdogAbortMs / 3),
        abortAfterMs: this.options.watchdogAbortMs,
        exitGraceMs: WATCHDOG_EXIT_GRACE_MS,
        source: mountSourceName(this.options.mountpoint),
        realMountpoint: realMountpointPath(this.options.mountpoint),
      },
      probeFile: path.join(this.options.mountpoint, 'proc', 'sys', 'kernel', 'stats_isolated'),
      logLevel: this.logger.level as LogLevel,
      forceExitAfterMs: FORCE_EXIT_AFTER_MS,
    };
    const worker = new Worker(path.join(__dirname, 'health', 'watchdogWorker.js'), { workerData: data, resourceLimits: WATCHDOG_HEAP });
    worker.on('message', (message: WatchdogMessage) => {
      if (message.type === 'verdict') this.verdict = message.verdict;
      else if (message.type === 'exit') this.onFatal(message.reason);
    });
    worker.on('error', (err) => this.logger.error({ err: err.stack ?? String(err) }, 'watchdog thread failed: no liveness checks from now on'));
    worker.unref(); // never what keeps the process alive
    return worker;
  }

  /** Drops containers idle or gone (the registry's one sweep), and switch entries whose cgroup is gone. */
  sweep(): void {
    try {
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
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.watchdog?.postMessage({ type: 'shutdown', timeoutMs: SHUTDOWN_KILL_AFTER_MS } satisfies WatchdogCommand);
    this.attachManager?.stop();
    this.sampler.stop();
    this.filesystem.unmount();
    this.logger.info({ mountpoint: this.options.mountpoint }, 'unmounted');
    if (this.health) await withTimeout(this.health.close(), HEALTH_CLOSE_MS);
  }
}

function withTimeout(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); });
  return Promise.race([work.then(() => undefined, () => undefined), timeout]).finally(() => clearTimeout(timer));
}

/** "major:minor" of our freshly made mount, from our own mountinfo. */
function ownDevice(mountpoint: string): string | null {
  const mounts = readMountinfo('/proc/self') ?? [];
  return findOwnMount(mounts, mountSourceName(mountpoint), realMountpointPath(mountpoint))?.device ?? null;
}

/**
 * Runs one start-up step, turning what it throws into a StartupError (one line, exit 1): these
 * are the operator's to fix (a path that is a file, permissions), not bugs to print a stack for.
 */
function startupStep<T>(what: string, step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof StartupError) throw err;
    const message = err instanceof StateFileError ? err.message : `${what}: ${(err as Error).message}`;
    throw new StartupError(message);
  }
}

function checkMachine(options: DaemonOptions, logger: Logger): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new StartupError('must run as root (mounting with allow_other and reading every container\'s cgroup need it)');
  }
  if (!fs.existsSync('/dev/fuse')) {
    throw new StartupError('/dev/fuse does not exist: load the fuse module (modprobe fuse), or give the container the device');
  }
  let stat: fs.Stats;
  try {
    stat = fs.statSync(options.mountpoint);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') {
      // A previous isolfs died without unmounting (kill -9): its mount answers nothing. Detach
      // it so we can mount afresh; containers' binds of the old mount are repaired by attach.
      recoverDeadMount(options.mountpoint, logger);
      stat = fs.statSync(options.mountpoint);
    } else if (code === 'ENOENT') {
      throw new StartupError(`mountpoint ${options.mountpoint} does not exist`);
    } else {
      throw new StartupError(`mountpoint ${options.mountpoint}: ${(err as Error).message}`);
    }
  }
  if (!stat.isDirectory()) throw new StartupError(`mountpoint ${options.mountpoint} is not a directory`);
  if (isMountPoint(options.mountpoint)) {
    throw new StartupError(`mountpoint ${options.mountpoint} is busy: something is already mounted there`);
  }
}

function isMountPoint(dir: string): boolean {
  const resolved = fs.realpathSync(dir);
  return (readMountinfo('/proc/self') ?? []).some((mount) => mount.mountpoint === resolved);
}

function recoverDeadMount(mountpoint: string, logger: Logger): void {
  try {
    execFileSync('umount', ['-l', mountpoint], { stdio: 'pipe' });
  } catch (err) {
    throw new StartupError(`mountpoint ${mountpoint} is a dead FUSE mount and cannot be detached: ${String(err)}`);
  }
  logger.warn({ mountpoint }, 'detached a dead mount left by a previous isolfs (it was killed without unmounting)');
}

function joinHostCgroupNamespace(native: NativeAddon, procRoot: string, logger: Logger): void {
  const hostNs = path.join(procRoot, '1', 'ns', 'cgroup');
  let ours: string;
  let hosts: string;
  try {
    ours = fs.readlinkSync('/proc/self/ns/cgroup');
    hosts = fs.readlinkSync(hostNs);
  } catch (err) {
    // Some sandboxes refuse even root a look at pid 1's namespaces. Callers outside our cgroup
    // namespace still show up as "/.." paths and get the host's files (logged per caller), so
    // this is not fatal; say it once, quietly when it is the usual EACCES.
    const code = (err as NodeJS.ErrnoException).code;
    const level = code === 'EACCES' || code === 'EPERM' ? 'info' : 'warn';
    logger[level]({ err: String(err) }, 'cannot compare cgroup namespaces; staying in ours');
    return;
  }
  if (ours === hosts) return;
  try {
    native.setnsCgroup(hostNs);
  } catch (err) {
    throw new StartupError(`cannot join the host's cgroup namespace (${hostNs}): ${(err as Error).message}; run with hostPID and privileges`);
  }
  logger.info({ from: ours, to: hosts }, "joined the host's cgroup namespace, so every caller's cgroup path is absolute");
}
