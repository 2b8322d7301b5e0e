/**
 * Which cgroup a process (or thread) is in, resolved in our cgroup mounts: the one place that
 * turns a pid into a CgroupLocation (a FUSE caller's pid, a container process met by attach).
 */
import { type ProcCgroupEntries, readProcCgroup } from './procCgroup';
import { locateCgroup, type CgroupHierarchy } from '../cgroup/hierarchy';
import type { CgroupLocation } from '../cgroup/snapshot';

export type ProcessCgroup =
  | { found: true; location: CgroupLocation }
  /** `why`: one line for a log (the process is gone, invisible to us, or its file is malformed). */
  | { found: false; why: string };

export function locateProcess(procRoot: string, hierarchy: CgroupHierarchy, pid: number): ProcessCgroup {
  // pid 0: FUSE reports it for a caller outside our pid namespace (the daemon lacks hostPID).
  if (!Number.isInteger(pid) || pid <= 0) return { found: false, why: 'caller not visible in our pid namespace' };
  let entries: ProcCgroupEntries | null;
  try {
    entries = readProcCgroup(procRoot, pid);
  } catch (err) {
    return { found: false, why: `cannot parse /proc/${pid}/cgroup: ${String(err)}` };
  }
  if (!entries) return { found: false, why: 'process exited before its cgroup was read' };
  // "/.." paths: outside our cgroup namespace, relative to a root we cannot see.
  if (entries.relativeToOtherNamespace) return { found: false, why: "process's cgroup is outside our cgroup namespace" };
  return { found: true, location: locateCgroup(hierarchy, entries) };
}
