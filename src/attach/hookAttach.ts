/**
 * What an OCI hook request does (hookServer.ts): attach one container now, through the attach
 * manager's own plan and apply, under the container's rootfs when the runtime has not yet
 * switched to it (createRuntime runs before pivot_root; see native/src/hook.c).
 *
 * The same rules as the periodic scan: only while the host switch is on, only a container whose
 * cgroup starts with an --attach prefix, nothing created inside the container.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CgroupHierarchy } from '../cgroup/hierarchy';
import { mountSourceName } from '../fuse/filesystem';
import { locateProcess } from '../identity/processCgroup';
import type { AttachOutcome, HookAttachRequest } from './hookServer';
import type { AttachManager } from './manager';
import { findOwnMount, readMountinfo, realMountpointPath } from './mountinfo';
import type { OurDevices } from './plan';

export interface HookAttachOptions {
  manager: Pick<AttachManager, 'plan' | 'apply'>;
  mountpoint: string;
  viewsMountpoint: string;
  procRoot: string;
  hierarchy: CgroupHierarchy;
  prefixes: readonly string[];
  hostIsolated: () => boolean;
}

/** A bundle's config.json is a few KiB (a seccomp profile makes it tens): far more is not one. */
const CONFIG_MAX_BYTES = 4 * 1024 * 1024;

export async function attachForHook(options: HookAttachOptions, request: HookAttachRequest): Promise<AttachOutcome> {
  const { pid } = request;
  if (!options.hostIsolated()) return { result: 'skipped', reason: 'kernel.stats_isolated is 0' };
  const found = locateProcess(options.procRoot, options.hierarchy, pid);
  if (!found.found) return { result: 'failed', reason: `pid ${pid}: ${found.why}` };
  const { location } = found;
  if (location.key === '/' || !options.prefixes.some((p) => location.key.startsWith(p))) {
    return { result: 'skipped', reason: `cgroup ${location.key} is not under an --attach prefix` };
  }
  const ourDevices = ownDevices(options);
  if (ourDevices === null) return { result: 'failed', reason: 'our own mounts are not in /proc/self/mountinfo' };
  // The bundle is a path in the runtime's namespaces: read it through the hook's root.
  const rootfs = await readRootfs(options.procRoot, request.hookPid ?? pid, request.bundle);
  const root = await containerRoot(options.procRoot, pid, rootfs);
  const plan = await options.manager.plan({ pid, location, attach: true, ourDevices, root });
  const results = await options.manager.apply(plan);
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) {
    return { result: 'failed', reason: failed.map((r) => (r.ok ? '' : `${r.target}: ${r.errno} ${r.message}`)).join('; ') };
  }
  const files = results.map((r) => (root === '/' ? r.target : `/${path.posix.relative(root, r.target)}`));
  return { result: 'attached', container: location.key, files };
}

/** The rootfs path (runtime's view) from the bundle's config.json: root.path, relative to the bundle or absolute. */
async function readRootfs(procRoot: string, viaPid: number, bundle: string): Promise<string> {
  const file = path.join(procRoot, String(viaPid), 'root', bundle, 'config.json');
  const handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  let text: string;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${bundle}/config.json is not a regular file`);
    const buffer = Buffer.alloc(Math.min(stat.size, CONFIG_MAX_BYTES) + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > CONFIG_MAX_BYTES) throw new Error(`${bundle}/config.json is larger than ${CONFIG_MAX_BYTES} bytes`);
    text = buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
  const rootPath = (JSON.parse(text) as { root?: { path?: unknown } }).root?.path;
  if (typeof rootPath !== 'string' || rootPath === '' || rootPath.includes('\0')) throw new Error(`${bundle}/config.json has no root.path`);
  return path.posix.resolve(bundle, rootPath);
}

/**
 * Where the container's / is in the process's root: its rootfs path while the runtime has not
 * switched to it (the rootfs is then a directory other than the root), "/" once it has (the
 * rootfs path no longer exists inside, or is the root itself).
 */
async function containerRoot(procRoot: string, pid: number, rootfs: string): Promise<string> {
  const processRoot = path.join(procRoot, String(pid), 'root');
  const [rootStat, rootfsStat] = await Promise.all([
    fs.promises.stat(processRoot),
    fs.promises.stat(path.join(processRoot, rootfs)).catch(() => null),
  ]);
  if (rootfsStat === null || (rootfsStat.dev === rootStat.dev && rootfsStat.ino === rootStat.ino)) return '/';
  return rootfs;
}

/** "major:minor" of our two live mounts (as the manager finds them for a scan). */
function ownDevices(options: HookAttachOptions): OurDevices | null {
  const mounts = readMountinfo(path.join(options.procRoot, 'self')) ?? [];
  const source = mountSourceName(options.mountpoint);
  const main = findOwnMount(mounts, source, realMountpointPath(options.mountpoint))?.device;
  const views = findOwnMount(mounts, source, realMountpointPath(options.viewsMountpoint))?.device;
  return main !== undefined && views !== undefined ? { main, 'container-views': views } : null;
}
