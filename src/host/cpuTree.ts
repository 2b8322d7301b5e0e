/**
 * The shape of the host's /sys/devices/system/cpu, scanned once at start-up: the files isolfs
 * serves there. A container's tree has one cpuN/ per CPU it sees (renumbered from 0), each with
 * the files of a host cpuN/, and everything that is not per CPU beside them.
 *
 * Bounded: the scan stops at MAX_DEPTH and at a cap of files; names must be plain sysfs names
 * (no '/', no '..', no odd bytes); a symlink is followed only when it stays inside the CPU
 * directory (cpuN/cpufreq -> ../cpufreq/policyN), others (cpuN/subsystem, cpuN/node0, driver)
 * are left out: a FUSE tree that answered them would point a container's path walk at whatever
 * that relative path names under its own mount.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface HostCpuTree {
  /** Files outside the cpuN directories, relative to the CPU directory ("smt/active"). */
  shared: string[];
  /** Files of a cpuN directory, relative to it ("topology/core_id"). */
  perCpu: string[];
  /** N of the host's cpuN directories, ascending. */
  cpuIds: number[];
}

/** cpuN/cache/index0/size is 3 below cpuN; cpufreq/ondemand/x 2 below the top. */
const MAX_DEPTH = 4;
/** More than any kernel has (~60 here, a few hundred with cpuidle and cpufreq governors). */
const MAX_SHARED_FILES = 2048;
const MAX_PER_CPU_FILES = 512;
/**
 * Per-CPU files in all (the tree holds them for every cpuN), each an inode in daemon memory.
 * A host with many CPUs keeps what programs read first (ESSENTIAL_PER_CPU), then topology only.
 */
const MAX_PER_CPU_NODES = 100_000;
const ESSENTIAL_PER_CPU = /^(online$|topology\/|cache\/|cpufreq\/)/;
/** The per-CPU file list is the union of the first few cpuN/ (cpu0 often lacks `online`). */
const CPU_DIRS_SCANNED = 16;
/** sysfs names: attribute and directory names of the kernel's CPU subsystem. */
const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:,+-]{0,63}$/;
const CPU_DIR_PATTERN = /^cpu(\d{1,5})$/;
/** Files served even when the host lacks them (computed from what the container sees). */
const ALWAYS_SHARED = ['online', 'possible', 'present', 'offline'];

/** The host's CPU directory under `sysRoot`, bounded; a missing directory gives the computed files only. */
export function scanHostCpuTree(sysRoot: string): HostCpuTree {
  const top = path.join(sysRoot, 'devices/system/cpu');
  let inside: string;
  try {
    inside = fs.realpathSync(top);
  } catch {
    return { shared: [...ALWAYS_SHARED], perCpu: ['online'], cpuIds: [] };
  }
  const shared = new Set<string>();
  const cpuIds: number[] = [];
  // cpufreq/policyN is per CPU: each cpuN/cpufreq of the container stands for its own.
  const keepShared = (rel: string): boolean => !/^cpufreq\/policy\d+(\/|$)/.test(rel);
  for (const entry of listDir(top)) {
    const cpu = CPU_DIR_PATTERN.exec(entry);
    // cpuN names are the cpuN directories' in the tree: a cpuN that is no directory is left out.
    if (!cpu) collect({ dir: top, inside, into: shared, cap: MAX_SHARED_FILES, keep: keepShared }, entry, 1);
    else if (isDir(path.join(top, entry))) cpuIds.push(Number(cpu[1]));
  }
  cpuIds.sort((a, b) => a - b);
  const perCpu = new Set<string>(['online']);
  for (const id of cpuIds.slice(0, CPU_DIRS_SCANNED)) {
    const dir = path.join(top, `cpu${id}`);
    for (const entry of listDir(dir)) collect({ dir, inside, into: perCpu, cap: MAX_PER_CPU_FILES, keep: () => true }, entry, 1);
  }
  for (const name of ALWAYS_SHARED) shared.add(name);
  return { shared: [...shared].sort(byName), perCpu: withinBudget([...perCpu].sort(byName), cpuIds.length), cpuIds };
}

/** `perCpu`, cut down so that a copy for each of `cpuCount` CPUs stays within MAX_PER_CPU_NODES. */
export function withinBudget(perCpu: string[], cpuCount: number): string[] {
  const fits = (files: string[]): boolean => files.length * Math.max(1, cpuCount) <= MAX_PER_CPU_NODES;
  if (fits(perCpu)) return perCpu;
  const essential = perCpu.filter((f) => ESSENTIAL_PER_CPU.test(f));
  if (fits(essential)) return essential;
  return perCpu.filter((f) => f === 'online' || f.startsWith('topology/'));
}

/** One scan: from `dir`, files into `into` (at most `cap`), symlinks followed only within `inside`. */
interface Scan {
  dir: string;
  inside: string;
  into: Set<string>;
  cap: number;
  keep: (rel: string) => boolean;
}

function byName(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

/** Adds the files at and below `scan.dir/rel` to `scan.into` (relative to scan.dir). */
function collect(scan: Scan, rel: string, depth: number): void {
  const { dir, inside, into, cap, keep } = scan;
  if (into.size >= cap || depth > MAX_DEPTH || !keep(rel)) return;
  const full = path.join(dir, rel);
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(full);
    if (stat.isSymbolicLink()) {
      const target = fs.realpathSync(full);
      if (target !== inside && !target.startsWith(`${inside}/`)) return;
      stat = fs.statSync(full);
    }
  } catch {
    return; // gone, or a loop: left out
  }
  if (stat.isFile()) {
    if ((stat.mode & 0o444) !== 0) into.add(rel); // write-only files (probe, release) are not served
    return;
  }
  if (!stat.isDirectory()) return;
  for (const entry of listDir(full)) collect(scan, `${rel}/${entry}`, depth + 1);
}

/** Names in `dir` that are plain sysfs names; [] if it cannot be read. */
function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((name) => NAME_PATTERN.test(name)).sort(byName);
  } catch {
    return [];
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
