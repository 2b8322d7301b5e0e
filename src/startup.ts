/**
 * Start-up checks and steps whose failures are the operator's to fix (a missing /dev/fuse, a
 * busy mountpoint, permissions): each becomes a StartupError, printed as one line, exit 1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { NativeAddon } from './fuse/native';
import { IsolfsFilesystem, mountSourceName } from './fuse/filesystem';
import { DEFAULT_MAX_OPEN_HANDLES_PER_TENANT } from './fuse/openFiles';
import type { IsolfsBackend } from './backend';
import type { DaemonOptions } from './daemon';
import { StateFileError } from './switches/store';
import { findOwnMount, readMountinfo, realMountpointPath } from './attach/mountinfo';
import type { Logger } from './log';
import type { CpuTreePath } from './fuse/layout';
import { scanHostCpuTree, type HostCpuTree } from './host/cpuTree';
import { cpuTreePaths } from './cpuTree';

/** A start-up problem an operator can fix; printed as one line, exit status 1. */
export class StartupError extends Error {}

/**
 * Runs one start-up step, turning what it throws into a StartupError (one line, exit 1): these
 * are the operator's to fix (a path that is a file, permissions), not bugs to print a stack for.
 */
export function startupStep<T>(what: string, step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof StartupError) throw err;
    const message = err instanceof StateFileError ? err.message : `${what}: ${(err as Error).message}`;
    throw new StartupError(message, { cause: err });
  }
}

export function checkMachine(mountpoint: string, logger: Logger): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new StartupError('must run as root (mounting with allow_other and reading every container\'s cgroup need it)');
  }
  if (!fs.existsSync('/dev/fuse')) {
    throw new StartupError('/dev/fuse does not exist: load the fuse module (modprobe fuse), or give the container the device');
  }
  checkMountpoint(mountpoint, logger);
}

/** An empty directory to mount on; a dead mount left there by a previous isolfs is detached first. */
export function checkMountpoint(mountpoint: string, logger: Logger): void {
  const stat = statMountpoint(mountpoint, logger);
  if (!stat.isDirectory()) throw new StartupError(`mountpoint ${mountpoint} is not a directory`);
  if (isMountPoint(mountpoint)) {
    // stat may still answer from attributes the kernel cached (a dead mount's root): statfs asks.
    if (!connectionDead(mountpoint)) throw new StartupError(`mountpoint ${mountpoint} is busy: something is already mounted there`);
    recoverDeadMount(mountpoint, logger);
  }
}

/** Whether the file system mounted at `dir` is a FUSE mount whose daemon is gone (ENOTCONN). */
function connectionDead(dir: string): boolean {
  try {
    fs.statfsSync(dir);
    return false;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOTCONN' || code === 'ECONNABORTED';
  }
}

function statMountpoint(mountpoint: string, logger: Logger): fs.Stats {
  try {
    return fs.statSync(mountpoint);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new StartupError(`mountpoint ${mountpoint} does not exist`, { cause: err });
    if (code !== 'ENOTCONN') throw new StartupError(`mountpoint ${mountpoint}: ${(err as Error).message}`, { cause: err });
  }
  // A previous isolfs died without unmounting (kill -9): its mount answers nothing. Detach
  // it so we can mount afresh; containers' binds of the old mount are repaired by attach.
  recoverDeadMount(mountpoint, logger);
  return fs.statSync(mountpoint);
}

function isMountPoint(dir: string): boolean {
  const resolved = fs.realpathSync(dir);
  return (readMountinfo('/proc/self') ?? []).some((mount) => mount.mountpoint === resolved);
}

function recoverDeadMount(mountpoint: string, logger: Logger): void {
  try {
    execFileSync('umount', ['-l', mountpoint], { stdio: 'pipe' });
  } catch (err) {
    throw new StartupError(`mountpoint ${mountpoint} is a dead FUSE mount and cannot be detached: ${String(err)}`, { cause: err });
  }
  logger.warn({ mountpoint }, 'detached a dead mount left by a previous isolfs (it was killed without unmounting)');
}

export function joinHostCgroupNamespace(native: NativeAddon, procRoot: string, logger: Logger): void {
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
    throw new StartupError(`cannot join the host's cgroup namespace (${hostNs}): ${(err as Error).message}; run with hostPID and privileges`, { cause: err });
  }
  logger.info({ from: ours, to: hosts }, "joined the host's cgroup namespace, so every caller's cgroup path is absolute");
}

/** Creates the directory (and its parents, root-only) unless something, a dead mount too, is there. */
function makeMountpoint(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTCONN' && code !== 'ECONNABORTED') throw err; // a predecessor's dead mount: checkMountpoint detaches it
  }
}

/** Whether the container-views tree's mount is no longer where we made it (unmounted from outside). */
export function viewsMountGone(options: DaemonOptions): boolean {
  const mounts = readMountinfo('/proc/self') ?? [];
  return findOwnMount(mounts, mountSourceName(options.mountpoint), realMountpointPath(options.viewsMountpoint)) === undefined;
}

/**
 * "major:minor" of our freshly made mount, from our own mountinfo. `sourceFor`: the mountpoint its
 * source names (the main tree's, for the views tree too).
 */
export function ownDevice(mountpoint: string, sourceFor = mountpoint): string | null {
  const mounts = readMountinfo('/proc/self') ?? [];
  return findOwnMount(mounts, mountSourceName(sourceFor), realMountpointPath(mountpoint))?.device ?? null;
}

/**
 * The container-views tree, on a connection of its own (see TreeKind), when the attach manager
 * runs (--attach, or repair of a predecessor's mounts), else null. Its source names the main
 * mountpoint: a restarted daemon repairs its predecessor's mounts of both trees. Its files follow
 * switch changes at once. If it cannot be mounted, the main tree (`main`) is unmounted too.
 */
export function mountViews(
  main: IsolfsFilesystem, { native, backend, options, logger }: { native: NativeAddon; backend: IsolfsBackend; options: DaemonOptions; logger: Logger },
): IsolfsFilesystem | null {
  if (!options.repairMounts && options.attachPrefixes.length === 0) return null;
  const mountpoint = options.viewsMountpoint;
  const views = new IsolfsFilesystem(native, backend, { tree: 'container-views' });
  try {
    startupStep(`views mountpoint ${mountpoint}`, () => makeMountpoint(mountpoint));
    checkMountpoint(mountpoint, logger);
    views.mount(mountpoint, options.loop, options.mountpoint);
  } catch (err) {
    main.unmount();
    if (err instanceof StartupError) throw err;
    throw new StartupError(`cannot mount ${mountpoint}: ${(err as Error).message}`, { cause: err });
  }
  backend.addSwitchListener(() => views.refreshContainerFiles());
  return views;
}

/**
 * The CPU tree's files: a cpuN/ for each N the host has and each N below its CPU count (an
 * isolated reader sees cpu0..cpu<n-1> whatever ids its host CPUs have).
 */
function cpuTreeLayout(host: HostCpuTree): { paths: CpuTreePath[]; hostCpuIds: number[] } {
  const ids = new Set([...host.cpuIds, ...host.cpuIds.map((_, i) => i)]);
  return { paths: cpuTreePaths(host.shared, host.perCpu, [...ids].sort((a, b) => a - b)), hostCpuIds: host.cpuIds };
}

export function mountFilesystem(native: NativeAddon, backend: IsolfsBackend, options: DaemonOptions, logger: Logger): IsolfsFilesystem {
  const filesystem = new IsolfsFilesystem(native, backend, {
    cpuTree: cpuTreeLayout(scanHostCpuTree(options.sysRoot)),
    maxOpenHandles: options.maxOpenFiles,
    // Called at most every few seconds by the filesystem, with the opens refused meanwhile.
    maxOpenHandlesPerTenant: options.maxOpenFilesPerContainer ?? DEFAULT_MAX_OPEN_HANDLES_PER_TENANT,
    onLimit: (refused) => logger.warn({ maxOpenFiles: options.maxOpenFiles, refused }, 'open-file limit reached: answering ENFILE'),
    onTenantLimit: (tenant, refused) => logger.warn({ container: tenant, maxOpenFilesPerContainer: options.maxOpenFilesPerContainer, refused },
      "a container's open-file limit reached: answering ENFILE to it"),
  });
  try {
    filesystem.mount(options.mountpoint, options.loop);
  } catch (err) {
    throw new StartupError(`cannot mount ${options.mountpoint}: ${(err as Error).message}`, { cause: err });
  }
  return filesystem;
}
