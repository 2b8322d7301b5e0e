/** The host's processes and their mount namespaces, as attach scans them. */
import fs from 'node:fs';
import path from 'node:path';
import { readBoundedPrefix } from '../host/boundedRead';

/** The pids under procRoot, ascending (the lowest stands for its namespace); none when unreadable. */
export function listPids(procRoot: string): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(procRoot);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of names) if (/^\d+$/.test(name)) pids.push(Number(name));
  return pids.sort((a, b) => a - b);
}

/** The inode of a process's mount namespace (stat follows the ns link), or null. */
export function namespaceInode(procDir: string): number | null {
  try {
    return fs.statSync(path.join(procDir, 'ns', 'mnt')).ino;
  } catch {
    return null;
  }
}

/** At most this many of a cgroup's processes are looked at per look (one per namespace is enough). */
const MAX_CGROUP_PIDS = 1024;

/** The pids in a cgroup directory's cgroup.procs (bounded); none when it is gone or unreadable. */
export function readCgroupPids(cgroupDir: string): number[] {
  let text: string;
  try {
    text = readBoundedPrefix(cgroupDir, 'cgroup.procs', 64 * 1024).text;
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const line of text.split('\n')) {
    if (pids.length === MAX_CGROUP_PIDS) break;
    if (/^\d+$/.test(line)) pids.push(Number(line));
  }
  return pids;
}
