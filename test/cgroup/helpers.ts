/** Locate a fixture cgroup the way the daemon does: discover the tree, parse /proc/<pid>/cgroup. */
import path from 'node:path';
import { discoverHierarchy, locateCgroup } from '../../src/cgroup/hierarchy';
import type { CgroupLocation } from '../../src/cgroup/snapshot';
import { parseProcCgroup } from '../../src/identity/procCgroup';

export const FIXTURES = path.join(__dirname, '../fixtures/cgroup');
export const MIB = 1024n * 1024n;

/** A task in `cgroupPath` of the given v1 controllers (default: all) of fixture tree `tree`
 *  (v1, v1-noswap, hybrid). */
export function v1Location(
  tree: string,
  cgroupPath: string,
  controllers = ['memory', 'cpu,cpuacct', 'cpuset', 'pids'],
): CgroupLocation {
  const text = controllers.map((c, i) => `${i + 1}:${c}:${cgroupPath}`).join('\n');
  return locateCgroup(discoverHierarchy(`${FIXTURES}/${tree}`), parseProcCgroup(text));
}

/** A task in `cgroupPath` of the pure v2 fixture tree. */
export function v2Location(cgroupPath: string): CgroupLocation {
  return locateCgroup(discoverHierarchy(`${FIXTURES}/v2`), parseProcCgroup(`0::${cgroupPath}\n`));
}
