/**
 * Keeps containers' mounts of isolfs alive and, with --attach, puts them there.
 *
 * Every scan looks at each mount namespace on the host once (through one of its processes):
 *
 * - repair (always on): a namespace holding an isolfs mount that is not our live connection
 *   (a previous daemon's, dead since it was killed: "Transport endpoint is not connected") gets
 *   each such mount replaced by a fresh one of the same file from our mount. This covers binds
 *   made at container creation from the shared hostPath files as well as attached ones, and the
 *   container keeps running.
 * - attach (--attach PREFIX, while the host switch is on): a namespace whose processes are in a
 *   cgroup starting with PREFIX gets the container's own copies (/containers/<key>/...) bound
 *   over /proc/... and /sys/devices/system/cpu/online, including /proc/vmstat, which runc refuses
 *   to bind at creation.
 *
 * The helper (isolfs-attach) stats its sources through our own mount, so it is only ever run
 * asynchronously: the event loop must stay free to answer those requests.
 */
import fs from 'node:fs';
import path from 'node:path';
import { attachFiles, AttachHelperError, type AttachPair } from './attach';
import { readProcCgroup } from '../identity/procCgroup';
import { locateCgroup, type CgroupHierarchy } from '../cgroup/hierarchy';
import type { CgroupLocation } from '../cgroup/snapshot';
import { CONTAINERS_DIR, containerFilePath } from '../fuse/filesystem';
import { VIEW_PATHS, type ServedPath } from '../fuse/layout';
import { RateLimitedLog, type Logger } from '../log';

/** What the manager needs of the file system: per-container subtrees. */
export interface ContainerTree {
  addContainer(key: string): boolean;
  removeContainer(key: string): void;
}

export interface AttachManagerOptions {
  mountpoint: string;
  procRoot: string;
  hierarchy: CgroupHierarchy;
  helperPath: string;
  /** Cgroup path prefixes to attach to (--attach); empty = repair only. */
  prefixes: readonly string[];
  intervalMs: number;
  /** The host switch: attach only while it is on (repair always). */
  hostIsolated: () => boolean;
  tree: ContainerTree;
  /** Filled here: where each container with a subtree is (the backend reads it). */
  attached: Map<string, CgroupLocation>;
  logger: Logger;
  /** At most this many namespaces handled (helper runs) per scan; the rest wait for the next. */
  maxNamespacesPerScan?: number;
}

export interface ScanReport {
  namespaces: number;
  repairedMounts: number;
  attachedContainers: number;
  failures: number;
  durationMs: number;
}

/**
 * The files attach binds, as the container sees them. Not the control files: /proc/sys/kernel
 * has no such entries to bind over (a bind needs an existing target); pods that want the
 * container switch mount <mnt>/proc/sys/kernel with a hostPath volume where they like. Not
 * diskstats: it is the host's file anyway.
 */
export const ATTACHED_FILES: readonly ServedPath[] = VIEW_PATHS.filter((p) => p !== '/proc/diskstats');

interface IsolfsMount {
  /** Path inside the isolfs file system, e.g. /proc/meminfo or /containers/<key>/proc/vmstat. */
  root: string;
  /** Where it is mounted, as the namespace's processes see it. */
  mountpoint: string;
  device: string;
}

export class AttachManager {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<ScanReport> | null = null;
  /** Mount namespaces already handled (by inode), with the container key attached there. */
  private readonly handled = new Map<number, { key: string | null }>();
  private readonly rateLimited = new RateLimitedLog(60_000);
  private readonly ownMountNamespace: number | null;
  private readonly maxPerScan: number;

  constructor(private readonly options: AttachManagerOptions) {
    this.ownMountNamespace = namespaceInode(path.join(options.procRoot, 'self'));
    this.maxPerScan = options.maxNamespacesPerScan ?? 50;
  }

  /** Scans now, then every intervalMs. */
  start(): void {
    if (this.timer !== null) return;
    void this.scan();
    this.timer = setInterval(() => void this.scan(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One scan; concurrent calls share the one in progress. */
  scan(): Promise<ScanReport> {
    if (this.running === null) {
      this.running = this.scanOnce().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  private async scanOnce(): Promise<ScanReport> {
    const started = performance.now();
    const report: ScanReport = { namespaces: 0, repairedMounts: 0, attachedContainers: 0, failures: 0, durationMs: 0 };
    const ourDevice = this.ourDevice();
    if (ourDevice === null) {
      this.warn('no-mount', {}, 'our own mount is not in /proc/self/mountinfo: nothing to attach or repair');
      return report;
    }
    const seen = new Set<number>();
    const attaching = this.options.prefixes.length > 0 && this.options.hostIsolated();
    let helperRuns = 0;
    for (const pid of listPids(this.options.procRoot)) {
      const procDir = path.join(this.options.procRoot, String(pid));
      const ns = namespaceInode(procDir);
      if (ns === null || ns === this.ownMountNamespace || seen.has(ns)) continue;
      seen.add(ns);
      report.namespaces++;
      const done = this.handled.get(ns);
      if (done && (done.key !== null || !attaching)) continue;
      if (helperRuns >= this.maxPerScan) continue; // next scan
      const location = this.locate(pid);
      const key = attaching && location && location.key !== '/' && this.options.prefixes.some((p) => location.key.startsWith(p))
        ? location.key : null;

      // Repair first: dead mounts of a previous daemon, wherever they are bound.
      const pairs = new Map<string, AttachPair>();
      if (!done) {
        for (const mount of readIsolfsMounts(procDir)) {
          if (mount.device === ourDevice) continue;
          const source = this.sourceFor(mount.root, location);
          if (source === null) continue;
          pairs.set(mount.mountpoint, { source, target: mount.mountpoint });
        }
      }
      const repairs = pairs.size;
      if (key !== null && location) {
        if (!this.options.tree.addContainer(key)) {
          this.warn(`key:${key}`, { container: key }, 'cgroup path too long for a directory name: not attaching');
        } else {
          this.options.attached.set(key, location);
          for (const file of ATTACHED_FILES) {
            const rel = containerFilePath(key, file);
            if (rel !== null && !pairs.has(file)) pairs.set(file, { source: this.options.mountpoint + rel, target: file });
          }
        }
      }
      this.handled.set(ns, { key: key !== null && this.options.attached.has(key) ? key : null });
      if (pairs.size === 0) continue;
      helperRuns++;
      try {
        const results = await attachFiles(this.options.helperPath, pid, [...pairs.values()], { replace: true });
        const failed = results.filter((r) => !r.ok);
        // ENOENT: the container has no such file (say /proc/sys is not there): nothing to cover.
        report.failures += failed.filter((r) => r.ok === false && r.errno !== 'ENOENT').length;
        if (repairs > 0) report.repairedMounts += Math.min(repairs, results.filter((r) => r.ok).length);
        if (key !== null) report.attachedContainers++;
        this.options.logger.info({
          pid, container: key, repaired: repairs, attached: results.filter((r) => r.ok).map((r) => r.target),
          failed: failed.map((r) => (r.ok ? '' : `${r.target}: ${r.errno}`)),
        }, repairs > 0 ? 'repaired isolfs mounts in a container' : 'attached isolfs files into a container');
      } catch (err) {
        report.failures++;
        // The process may have exited since we listed it: forget the namespace, retry next scan.
        this.handled.delete(ns);
        const gone = err instanceof AttachHelperError && err.errno === 'ESRCH';
        if (!gone) this.warn(`helper:${ns}`, { pid, err: String(err) }, 'attach helper failed');
      }
    }
    this.forgetVanished(seen);
    report.durationMs = performance.now() - started;
    if (report.repairedMounts > 0 || report.attachedContainers > 0) this.options.logger.info({ ...report }, 'attach scan');
    return report;
  }

  /** The source for a mount whose path inside the old file system was `root`. */
  private sourceFor(root: string, location: CgroupLocation | null): string | null {
    const prefix = `/${CONTAINERS_DIR}/`;
    if (root.startsWith(prefix)) {
      // A per-container copy: recreate that container's subtree (we are a new daemon).
      const [name] = root.slice(prefix.length).split('/');
      let key: string;
      try {
        key = decodeURIComponent(name);
      } catch {
        return null;
      }
      if (!location || location.key !== key || !this.options.tree.addContainer(key)) return null;
      this.options.attached.set(key, location);
    }
    return this.options.mountpoint + root;
  }

  private locate(pid: number): CgroupLocation | null {
    try {
      const entries = readProcCgroup(this.options.procRoot, pid);
      if (!entries || entries.relativeToOtherNamespace) return null;
      return locateCgroup(this.options.hierarchy, entries);
    } catch {
      return null;
    }
  }

  /** Namespaces that no longer exist: forget them; containers with no namespace left: drop. */
  private forgetVanished(seen: Set<number>): void {
    for (const ns of [...this.handled.keys()]) if (!seen.has(ns)) this.handled.delete(ns);
    const live = new Set([...this.handled.values()].map((h) => h.key));
    for (const key of [...this.options.attached.keys()]) {
      if (!live.has(key) && !cgroupStillExists(this.options.attached.get(key))) {
        this.options.attached.delete(key);
        this.options.tree.removeContainer(key);
      }
    }
  }

  /** "major:minor" of our live mount, from our own mountinfo. */
  private ourDevice(): string | null {
    for (const mount of readIsolfsMounts(path.join(this.options.procRoot, 'self'))) {
      if (mount.mountpoint === this.options.mountpoint && mount.root === '/') return mount.device;
    }
    return null;
  }

  private warn(key: string, fields: object, message: string): void {
    if (this.rateLimited.allow(key, Date.now())) this.options.logger.warn(fields, message);
  }
}

function listPids(procRoot: string): number[] {
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
function namespaceInode(procDir: string): number | null {
  try {
    return fs.statSync(path.join(procDir, 'ns', 'mnt')).ino;
  } catch {
    return null;
  }
}

/**
 * The fuse.isolfs mounts of a process's namespace. mountinfo fields: id parent maj:min root
 * mountpoint options [optional...] - fstype source superoptions; paths escape space, tab,
 * newline and backslash as octal.
 */
export function readIsolfsMounts(procDir: string): IsolfsMount[] {
  let text: string;
  try {
    text = fs.readFileSync(path.join(procDir, 'mountinfo'), 'utf8');
  } catch {
    return [];
  }
  const mounts: IsolfsMount[] = [];
  for (const line of text.split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const fstype = line.slice(dash + 3).split(' ')[0];
    if (fstype !== 'fuse.isolfs') continue;
    const fields = line.slice(0, dash).split(' ');
    if (fields.length < 5) continue;
    mounts.push({ device: fields[2], root: unescapeMountinfo(fields[3]), mountpoint: unescapeMountinfo(fields[4]) });
  }
  return mounts;
}

function unescapeMountinfo(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

function cgroupStillExists(location: CgroupLocation | undefined): boolean {
  if (!location) return false;
  const dir = location.dirs.memory ?? location.unifiedDir ?? Object.values(location.dirs)[0];
  return dir !== undefined && fs.existsSync(dir);
}
