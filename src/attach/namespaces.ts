/** The host's processes and their mount namespaces, as attach scans them. */
import fs from 'node:fs';
import path from 'node:path';

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
