/** Locate a fixture cgroup the way the daemon does: discover the tree, parse /proc/<pid>/cgroup. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { discoverHierarchy, locateCgroup } from '../../src/cgroup/hierarchy';
import type { CgroupLocation } from '../../src/cgroup/snapshot';
import { parseProcCgroup } from '../../src/identity/procCgroup';

export const FIXTURES = path.join(__dirname, '../fixtures/cgroup');
/** A /sys whose devices/system/cpu/possible is "0-7": the fixture trees' 8 CPUs. */
export const FIXTURE_SYS = path.join(__dirname, '../fixtures/sys');
export const MIB = 1024n * 1024n;

/** A task in `cgroupPath` of the given v1 controllers (default: all) of fixture tree `tree`
 *  (v1, v1-noswap, hybrid). */
export function v1Location(
  tree: string,
  cgroupPath: string,
  controllers = ['memory', 'cpu,cpuacct', 'cpuset', 'pids'],
): CgroupLocation {
  const text = controllers.map((c, i) => `${i + 1}:${c}:${cgroupPath}`).join('\n');
  return locateCgroup(discoverHierarchy(`${FIXTURES}/${tree}`, FIXTURE_SYS), parseProcCgroup(text));
}

/** A task in `cgroupPath` of the pure v2 fixture tree. */
export function v2Location(cgroupPath: string): CgroupLocation {
  return locateCgroup(discoverHierarchy(`${FIXTURES}/v2`, FIXTURE_SYS), parseProcCgroup(`0::${cgroupPath}\n`));
}

/** A task with these /proc/<pid>/cgroup lines, in the cgroup tree at `root` (any directory). */
export function locationIn(root: string, procCgroupText: string, sysDir = FIXTURE_SYS): CgroupLocation {
  return locateCgroup(discoverHierarchy(root, sysDir), parseProcCgroup(procCgroupText));
}

/** A scratch cgroup tree: a copy of fixture tree `tree` in a fresh temporary directory. */
export function copyFixtureTree(tree: string): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `isolfs-${tree}-`));
  fs.cpSync(`${FIXTURES}/${tree}`, root, { recursive: true });
  return root;
}

/** Writes `files` (path relative to `root` -> content) creating directories as needed. */
export function writeTree(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  }
}
