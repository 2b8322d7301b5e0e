/**
 * Where the cgroup hierarchies are mounted on this machine, and where a task's cgroup lives in
 * them. discoverHierarchy runs once at start-up; locateCgroup runs per request and does no I/O.
 *
 * Three layouts exist in the wild, all under one root (normally /sys/fs/cgroup):
 * - pure v2: the root itself is a cgroup2 mount (it has cgroup.controllers);
 * - v1: one mount per controller or co-mounted group, "<root>/cpu,cpuacct", often with
 *   symlinks "cpu" and "cpuacct" pointing to it;
 * - hybrid: v1 mounts plus a cgroup2 mount at "<root>/unified" holding whatever controllers no
 *   v1 hierarchy took (often none: then it only tracks processes).
 */
import fs from 'node:fs';
import type { ProcCgroupEntries } from '../identity/procCgroup';
import type { CgroupLocation, Controller } from './snapshot';
import { readHostCpuCountLimit } from '../host/cpuOnline';
import { readBoundedText } from '../host/boundedRead';

export interface CgroupHierarchy {
  cgroupRoot: string;
  /** v1 controller -> the directory its hierarchy is mounted on (co-mounted ones share it). */
  v1: Map<Controller, string>;
  /** The cgroup2 mount: the root itself (pure v2), "<root>/unified" (hybrid), or null. */
  unifiedRoot: string | null;
  /** Controllers available in the cgroup2 hierarchy and not bound to a v1 hierarchy. */
  unifiedControllers: Set<Controller>;
  /** The host's possible CPU count: CPU ids in cgroup files must be below it (absent =
   *  MAX_CPU_COUNT). */
  cpuCountLimit?: number;
}

/** v1 controllers isolfs reads, by the name the kernel gives them. */
const V1_CONTROLLERS: readonly Controller[] = ['memory', 'cpu', 'cpuacct', 'cpuset', 'blkio', 'pids'];
/** v2 controllers isolfs reads ("io" is v2's blkio; v2 has no cpuacct: cpu.stat is core). */
const V2_CONTROLLERS: readonly Controller[] = ['memory', 'cpu', 'cpuset', 'io', 'pids'];

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function readControllersFile(dir: string): string[] {
  return readBoundedText(dir, 'cgroup.controllers').trim().split(/\s+/).filter(Boolean);
}

/**
 * Find the mounted hierarchies under `cgroupRoot`, and the host's possible CPUs under `sysDir`.
 * Throws when there is no hierarchy at all.
 */
export function discoverHierarchy(cgroupRoot: string, sysDir = '/sys'): CgroupHierarchy {
  const root = cgroupRoot.length > 1 ? cgroupRoot.replace(/\/+$/, '') : cgroupRoot;
  // Pure v2: never scan for v1 mounts, a v2 cgroup may well be called "memory".
  const pureV2 = fs.existsSync(`${root}/cgroup.controllers`);
  const v1 = pureV2 ? new Map<Controller, string>() : findV1Mounts(root);
  let unifiedRoot: string | null = null;
  if (pureV2) unifiedRoot = root;
  else if (fs.existsSync(`${root}/unified/cgroup.controllers`)) unifiedRoot = `${root}/unified`;

  const unifiedControllers = unifiedRoot === null ? new Set<Controller>() : readUnifiedControllers(unifiedRoot, v1);
  if (v1.size === 0 && unifiedRoot === null) {
    throw new Error(`no cgroup v1 controller mount and no cgroup2 mount found under ${root}`);
  }
  return { cgroupRoot: root, v1, unifiedRoot, unifiedControllers, cpuCountLimit: readHostCpuCountLimit(sysDir) };
}

/** The v1 controller mounts under `root`, by controller (co-mounted ones share a directory). */
function findV1Mounts(root: string): Map<Controller, string> {
  const v1 = new Map<Controller, string>();
  const realMountFor = new Set<Controller>();
  for (const entry of fs.readdirSync(root, { withFileTypes: true })) {
    const dir = `${root}/${entry.name}`;
    if (!isCgroupMount(entry, dir)) continue;
    const isRealMount = entry.isDirectory();
    for (const controller of v1ControllersNamed(entry.name)) {
      // "cpu" -> "cpu,cpuacct" and the real "cpu,cpuacct" name the same mount; prefer the
      // real directory, so a stale symlink can never win.
      if (!v1.has(controller) || (isRealMount && !realMountFor.has(controller))) {
        v1.set(controller, dir);
        if (isRealMount) realMountFor.add(controller);
      }
    }
  }
  return v1;
}

/** A directory (or a symlink to one) with cgroup.procs: a mounted hierarchy. */
function isCgroupMount(entry: fs.Dirent, dir: string): boolean {
  if (!(entry.isDirectory() || entry.isSymbolicLink())) return false;
  return isDirectory(dir) && fs.existsSync(`${dir}/cgroup.procs`);
}

/** The controllers isolfs reads that a mount directory's name ("cpu,cpuacct") lists. */
function v1ControllersNamed(mountName: string): Controller[] {
  const controllers: Controller[] = [];
  for (const name of mountName.split(',')) {
    const controller = V1_CONTROLLERS.find((c) => c === name);
    if (controller !== undefined) controllers.push(controller);
  }
  return controllers;
}

/** The cgroup2 controllers isolfs reads that no v1 hierarchy took. */
function readUnifiedControllers(unifiedRoot: string, v1: Map<Controller, string>): Set<Controller> {
  const unifiedControllers = new Set<Controller>();
  for (const name of readControllersFile(unifiedRoot)) {
    const controller = V2_CONTROLLERS.find((c) => c === name);
    // A controller bound to a v1 hierarchy is not usable on v2 (the kernel would not list
    // it there either; this guards against a v1 "cpu" shadowing v2 "cpu" regardless).
    if (controller !== undefined && !v1.has(controller)) unifiedControllers.add(controller);
  }
  return unifiedControllers;
}

/** A path from /proc/<pid>/cgroup that lies outside our cgroup namespace's root. */
function isOutsideNamespace(cgroupPath: string): boolean {
  return cgroupPath === '/..' || cgroupPath.startsWith('/../');
}

function join(root: string, cgroupPath: string): string {
  if (cgroupPath === '/') return root;
  return `${root}${cgroupPath.replace(/\/+$/, '')}`;
}

/**
 * Where the task with these /proc/<pid>/cgroup entries lives, per controller. Pure (no I/O).
 *
 * - key: the memory path (v1 memory controller, or the unified path when memory is on v2);
 *   without a memory controller the unified path, then "/".
 * - version: 2 when memory is on v2, or when the machine has no v1 hierarchy at all; else 1.
 * - A path outside our cgroup namespace ("/../x", see ProcCgroupEntries) gets no directory:
 *   it cannot be resolved in our mounts, and joining it would escape the hierarchy root. The
 *   key keeps the verbatim path; readers then find no controller and give their defaults.
 */
export function locateCgroup(h: CgroupHierarchy, entries: ProcCgroupEntries): CgroupLocation {
  const dirs: Partial<Record<Controller, string>> = {};
  const roots: Partial<Record<Controller, string>> = {};

  for (const [controller, mountDir] of h.v1) {
    const cgroupPath = entries.v1.get(controller);
    if (cgroupPath === undefined || isOutsideNamespace(cgroupPath)) continue;
    dirs[controller] = join(mountDir, cgroupPath);
    roots[controller] = mountDir;
  }

  let unifiedDir: string | null = null;
  if (h.unifiedRoot !== null && entries.unified !== null && !isOutsideNamespace(entries.unified)) {
    unifiedDir = join(h.unifiedRoot, entries.unified);
    for (const controller of h.unifiedControllers) {
      dirs[controller] = unifiedDir;
      roots[controller] = h.unifiedRoot;
    }
  }

  const memoryOnV2 = h.unifiedControllers.has('memory');
  const memoryPath = memoryOnV2 ? entries.unified : entries.v1.get('memory');
  const key = memoryPath ?? entries.unified ?? '/';
  const version: 1 | 2 = memoryOnV2 || h.v1.size === 0 ? 2 : 1;
  return { key, version, dirs, roots, unifiedDir, cpuCountLimit: h.cpuCountLimit };
}

/** Which cgroup version a location's directory for `controller` belongs to; null = none. */
export function controllerVersion(loc: CgroupLocation, controller: Controller): 1 | 2 | null {
  const dir = loc.dirs[controller];
  if (dir === undefined) return null;
  return dir === loc.unifiedDir ? 2 : 1;
}

/** The location's directory for `controller` when that controller is on a v1 hierarchy; else null. */
export function v1ControllerDir(loc: CgroupLocation, controller: Controller): string | null {
  const dir = loc.dirs[controller];
  return dir === undefined || dir === loc.unifiedDir ? null : dir;
}

/** A cgroup's directory whose process lists (v1 tasks, v2 cgroup.threads) stand for the container. */
export interface ProcessListDir {
  dir: string;
  threadsFile: 'tasks' | 'cgroup.threads';
}

/**
 * Where a container's processes are listed: v2's one directory, else the first v1 hierarchy of
 * memory, cpu, cpuacct, pids (the key is the memory path; a runtime gives them all the same
 * path). Never the unified dir of a v1 container: in a hybrid layout that is only systemd's
 * process tracking. null = nowhere (nothing to count).
 */
export function processListDir(loc: CgroupLocation): ProcessListDir | null {
  if (loc.version === 2 && loc.unifiedDir !== null) return { dir: loc.unifiedDir, threadsFile: 'cgroup.threads' };
  for (const controller of ['memory', 'cpu', 'cpuacct', 'pids'] as const) {
    const dir = v1ControllerDir(loc, controller);
    if (dir !== null) return { dir, threadsFile: 'tasks' };
  }
  return null;
}

/** Whether cgroup `key` still exists in any hierarchy we serve from. */
export function cgroupKeyExists(h: CgroupHierarchy, key: string): boolean {
  const mounts = [...new Set(h.v1.values())];
  if (h.unifiedRoot !== null) mounts.push(h.unifiedRoot);
  return mounts.some((mount) => isDirectory(join(mount, key)));
}
