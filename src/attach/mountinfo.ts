/**
 * /proc/<pid>/mountinfo: every mount of a process's namespace, and which of them is ours. Read
 * by the attach manager (containers' mounts) and the watchdog (our own mount still there).
 */
import fs from 'node:fs';
import path from 'node:path';
import { readBoundedText } from '../host/boundedRead';

/** ~150 bytes a mount: room for ~25,000 mounts in one namespace. */
export const MOUNTINFO_MAX_BYTES = 4 * 1024 * 1024;

/** One line of /proc/<pid>/mountinfo. */
export interface MountEntry {
  id: number;
  parentId: number;
  /** "major:minor" of the filesystem: a FUSE connection's is unique to it. */
  device: string;
  /** Path inside the mounted filesystem, e.g. /proc/meminfo or /containers/<name>/proc/vmstat. */
  root: string;
  /** Where it is mounted, relative to the root of the process whose mountinfo this is. */
  mountpoint: string;
  fstype: string;
  /** The filesystem's source: for isolfs, mountSourceName() of the mountpoint it was made for. */
  source: string;
}

/**
 * Every mount of a process's namespace; null when its mountinfo cannot be read within the cap
 * (gone, or a namespace with more mounts than any container needs: a hostile one can make
 * them in its own user namespace). mountinfo fields: id parent maj:min root mountpoint
 * options [optional...] - fstype source superoptions; paths escape space, tab, newline and
 * backslash as octal.
 */
export function readMountinfo(procDir: string): MountEntry[] | null {
  let text: string;
  try {
    text = readBoundedText(procDir, 'mountinfo', MOUNTINFO_MAX_BYTES);
  } catch {
    return null;
  }
  return parseMountinfo(text);
}

export function parseMountinfo(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const fields = line.slice(0, dash).split(' ');
    const after = line.slice(dash + 3).split(' ');
    if (fields.length < 5) continue;
    mounts.push({
      id: Number(fields[0]), parentId: Number(fields[1]), device: fields[2],
      root: unescapeMountinfo(fields[3]), mountpoint: unescapeMountinfo(fields[4]),
      fstype: after[0], source: unescapeMountinfo(after[1] ?? ''),
    });
  }
  return mounts;
}

/** `p` as mountinfo prints it: space, tab, newline and backslash as octal escapes. */
export function escapeMountinfo(p: string): string {
  return p.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/**
 * Only the lines of mountinfo `text` whose mountpoint field is `realMountpoint` (what
 * findOwnMount looks at): a node's mountinfo has a line per volume of every pod.
 */
export function mountinfoLinesAt(text: string, realMountpoint: string): string {
  const field = ` ${escapeMountinfo(realMountpoint)} `;
  return text.split('\n').filter((line) => line.includes(field)).join('\n');
}

function unescapeMountinfo(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/**
 * The mount visible at each mountpoint: where several are stacked on one path, the one no
 * other mount on that path sits on (its id is nobody's parent there). Where there are several
 * such (mounts on one path under different parents: a parent directory was mounted over since,
 * as `unshare --mount-proc` mounts a fresh /proc over one that had files bound in it), the one
 * whose stack sits on the mount visible beneath it.
 */
export function topmostMounts(mounts: readonly MountEntry[]): Map<string, MountEntry> {
  const byMountpoint = new Map<string, MountEntry[]>();
  for (const m of mounts) {
    const list = byMountpoint.get(m.mountpoint);
    if (list) list.push(m);
    else byMountpoint.set(m.mountpoint, [m]);
  }
  const byId = new Map(mounts.map((m) => [m.id, m]));
  const top = new Map<string, MountEntry>();
  // Shorter paths first: the mount beneath a path is resolved before the path.
  const paths = [...byMountpoint.keys()].sort((a, b) => a.length - b.length);
  for (const mountpoint of paths) {
    const list = byMountpoint.get(mountpoint) ?? [];
    const parents = new Set(list.map((m) => m.parentId));
    const candidates = list.filter((m) => !parents.has(m.id));
    const onVisible = candidates.find((m) => sitsOnVisible(m, byId, top));
    const topmost = onVisible ?? candidates[0] ?? list.at(-1);
    if (topmost) top.set(mountpoint, topmost); // always: every list has an entry
  }
  // In mountinfo's order (plans list their pairs in it).
  return new Map([...byMountpoint.keys()].flatMap((mountpoint) => {
    const topmost = top.get(mountpoint);
    return topmost ? [[mountpoint, topmost] as const] : [];
  }));
}

/**
 * Whether the bottom of the mount's stack on its path sits on the mount visible beneath it: the
 * nearest path above with a mount must have that parent as its visible mount (a mount on a path
 * in between, a CPU directory bound over sysfs say, hides it too).
 */
function sitsOnVisible(mount: MountEntry, byId: ReadonlyMap<number, MountEntry>, top: ReadonlyMap<string, MountEntry>): boolean {
  let base = mount;
  for (let below = byId.get(base.parentId), n = 0; below?.mountpoint === mount.mountpoint && n < byId.size; below = byId.get(below.parentId), n++) base = below;
  if (base.parentId === base.id || !byId.has(base.parentId)) return true;
  for (let dir = parentPath(mount.mountpoint); ; dir = parentPath(dir)) {
    const visible = top.get(dir);
    if (visible !== undefined) return visible.id === base.parentId;
    if (dir === '/') return true;
  }
}

/**
 * Whether a path's stack (mountStacks) is hidden: the nearest path above with mounts does not
 * show the mount its bottom sits on (a fresh /proc mounted over the one our file was bound in,
 * or a mount on a directory in between).
 */
export function stackHidden(stack: readonly MountEntry[], stacks: ReadonlyMap<string, readonly MountEntry[]>): boolean {
  const base = stack.at(-1);
  if (base === undefined || base.mountpoint === '/') return false;
  for (let dir = parentPath(base.mountpoint); ; dir = parentPath(dir)) {
    const visible = stacks.get(dir)?.[0];
    if (visible !== undefined) return visible.id !== base.parentId;
    if (dir === '/') return false;
  }
}

function parentPath(p: string): string {
  const slash = p.lastIndexOf('/');
  return slash <= 0 ? '/' : p.slice(0, slash);
}

/**
 * The mounts stacked at each mountpoint, topmost first: from the top, each one's parent while
 * that parent is mounted on the same path. (The mount the stack sits on, e.g. /proc's, is not
 * part of it.)
 */
export function mountStacks(mounts: readonly MountEntry[]): Map<string, MountEntry[]> {
  const byId = new Map(mounts.map((m) => [m.id, m]));
  const stacks = new Map<string, MountEntry[]>();
  for (const [mountpoint, top] of topmostMounts(mounts)) {
    const stack = [top];
    // A parent id repeats only in corrupt input: the length bound keeps the walk finite.
    for (let below = byId.get(top.parentId); below?.mountpoint === mountpoint && stack.length < mounts.length; below = byId.get(below.parentId)) {
      stack.push(below);
    }
    stacks.set(mountpoint, stack);
  }
  return stacks;
}

/**
 * Our own live mount: made for `source` (mountSourceName), at `realMountpoint`, the whole file
 * system (root "/"); undefined when it is gone (unmounted, or something else mounted on top).
 */
export function findOwnMount(mounts: readonly MountEntry[], source: string, realMountpoint: string): MountEntry | undefined {
  const here = topmostMounts(mounts.filter((m) => m.mountpoint === realMountpoint)).get(realMountpoint);
  return here !== undefined && here.source === source && here.root === '/' ? here : undefined;
}

/** The minor device number of a "major:minor" pair: a FUSE connection's id under fusectl. */
export function minorOf(device: string): number | null {
  const m = /^\d+:(\d+)$/.exec(device);
  return m ? Number(m[1]) : null;
}

/**
 * The mountpoint with symlinks resolved. Only its parent is resolved: a stat of the mountpoint
 * itself would be a FUSE request to ourselves from the event loop that must answer it.
 */
export function realMountpointPath(mountpoint: string): string {
  try {
    return path.join(fs.realpathSync(path.dirname(mountpoint)), path.basename(mountpoint));
  } catch {
    return mountpoint;
  }
}
