/**
 * Wiring: checks the machine, builds the pieces and connects them in the one direction data
 * flows (request -> identity -> switches -> snapshot -> view -> bytes). Owns start and stop.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { IsolfsFilesystem } from './fuse/filesystem';
import { loadNative, type LoopMode, type NativeAddon } from './fuse/native';
import { discoverHierarchy } from './cgroup/hierarchy';
import { readTaskCounts } from './cgroup/read';
import { parseCpuinfo } from './host/cpuinfo';
import { SwitchStore } from './switches/store';
import { EnvOptOut } from './switches/envOptOut';
import { LoadavgSampler } from './loadavg/sampler';
import { ContainerStates, TimedCache, type HostSources } from './files';
import { IsolfsBackend } from './backend';
import type { Logger } from './log';
import { Metrics } from './health/metrics';
import { AttachManager } from './attach/manager';
import { defaultAttachHelperPath } from './attach/attach';
import type { CgroupLocation } from './cgroup/snapshot';
import { startHealthServer, type HealthServer, type MountCheck } from './health/server';

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
}

/** A start-up problem an operator can fix; printed as one line, exit status 1. */
export class StartupError extends Error {}

/** How long a container may go unread before its per-container state is dropped. */
const CONTAINER_IDLE_MS = 10 * 60_000;
const SWEEP_INTERVAL_MS = 60_000;

export class Daemon {
  private sweepTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private health: HealthServer | null = null;
  private attachManager: AttachManager | null = null;

  private constructor(
    readonly options: DaemonOptions,
    readonly logger: Logger,
    readonly filesystem: IsolfsFilesystem,
    readonly backend: IsolfsBackend,
    readonly switches: SwitchStore,
    readonly sampler: LoadavgSampler,
    readonly containers: ContainerStates,
    readonly metrics: Metrics | null,
  ) {}

  static start(options: DaemonOptions, logger: Logger): Daemon {
    checkMachine(options, logger);
    const native = loadNative();
    if (options.joinHostCgroupNamespace) joinHostCgroupNamespace(native, options.procRoot, logger);
    const hierarchy = discoverHierarchy(options.cgroupRoot);
    const switches = SwitchStore.open(options.stateDir, logger, options.hostIsolated);
    const containers = new ContainerStates();
    const attached = new Map<string, CgroupLocation>();
    // Metrics cost a little on every request: only keep them when someone can scrape them.
    const metrics = options.http === undefined ? null : new Metrics();
    const maxTasksPerRead = 20_000;
    const sampler = new LoadavgSampler({
      intervalMs: options.loadavgIntervalMs,
      onTick: metrics ? (stats) => metrics.observeSamplerTick(stats.durationLastTickMs / 1000) : undefined,
      countTasks: (key) => {
        const location = containers.location(key);
        if (!location) return null;
        try {
          return readTaskCounts(location, options.procRoot, maxTasksPerRead);
        } catch {
          return null; // the cgroup is gone: the sampler forgets it
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
      cpuinfoCache: new TimedCache(1000, () => parseCpuinfo(fs.readFileSync(path.join(options.procRoot, 'cpuinfo'), 'utf8'))),
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
      attached,
    });
    metrics?.setSwitches(switches.hostIsolated, switches.optedOutCount);
    const filesystem = new IsolfsFilesystem(native, backend);
    try {
      filesystem.mount(options.mountpoint, options.loop);
    } catch (err) {
      throw new StartupError(`cannot mount ${options.mountpoint}: ${(err as Error).message}`);
    }
    sampler.start();
    const daemon = new Daemon(options, logger, filesystem, backend, switches, sampler, containers, metrics);
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
        attached,
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
        checkMount: () => this.checkMount(),
        isReady: () => !this.stopped,
        metrics: this.metrics,
        logger: this.logger,
      });
    } catch (err) {
      throw new StartupError(`cannot serve --http ${this.options.http}: ${(err as Error).message}`);
    }
    this.logger.info({ host: this.health.host, port: this.health.port }, 'health and metrics endpoint listening');
  }

  /**
   * A real read through our own mount. Asynchronous on purpose: fs.promises reads in libuv's
   * thread pool, so the event loop stays free to answer the FUSE request this read causes.
   */
  private async checkMount(): Promise<MountCheck> {
    const file = path.join(this.options.mountpoint, 'proc', 'meminfo');
    try {
      const text = await fs.promises.readFile(file, 'utf8');
      if (!text.startsWith('MemTotal:')) return { ok: false, detail: `${file} does not start with MemTotal:` };
      return { ok: true, detail: `${file} answers` };
    } catch (err) {
      return { ok: false, detail: `${file}: ${(err as Error).message}` };
    }
  }

  /** Forgets containers nobody reads and switch entries whose cgroup is gone. */
  sweep(): void {
    try {
      this.containers.prune(Date.now(), CONTAINER_IDLE_MS);
      const gone = this.switches.containerKeys().filter((key) => !cgroupExists(this.options.cgroupRoot, key));
      if (gone.length > 0) {
        this.switches.forget(gone);
        this.logger.info({ containers: gone }, 'forgot switch entries of containers whose cgroup is gone');
      }
    } catch (err) {
      this.logger.error({ err: String(err) }, 'sweep failed');
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.attachManager?.stop();
    // The process exits right after: closing the listener is enough, in-flight scrapes may drop.
    void this.health?.close();
    this.sampler.stop();
    this.filesystem.unmount();
    this.logger.info({ mountpoint: this.options.mountpoint }, 'unmounted');
  }
}

/** A container key is a cgroup path; it exists if any hierarchy still has that directory. */
function cgroupExists(cgroupRoot: string, key: string): boolean {
  const candidates = [path.join(cgroupRoot, key), path.join(cgroupRoot, 'unified', key), path.join(cgroupRoot, 'memory', key)];
  return candidates.some((dir) => fs.existsSync(dir));
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
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  for (const line of mounts.split('\n')) {
    const mountPath = line.split(' ')[4];
    if (mountPath !== undefined && unescapeMountPath(mountPath) === resolved) return true;
  }
  return false;
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
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
