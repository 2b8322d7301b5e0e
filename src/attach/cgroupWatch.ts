/**
 * Event-driven discovery for --attach: inotify (fs.watch) on the cgroup directories on the way to
 * and under each prefix, in the hierarchy whose paths are container keys (v1 memory, or cgroup2).
 * A container's cgroup is reported when it is created and whenever a process is moved into it
 * (a write to cgroup.procs or tasks: the kernel's VFS reports a modification of the file to the
 * directory's watchers, on v1 and v2) or its `cgroup.events` changes (v2: `populated` flips, also
 * for a process cloned straight into it with CLONE_INTO_CGROUP, which writes no file).
 *
 * Reported is only "look at this cgroup now": what is there to attach is decided by the attach
 * manager (a runtime joins the cgroup before it makes the container's mount namespace, so the
 * look is repeated a few times: lookSchedule.ts). The periodic scan stays as the safety net for
 * anything missed (watch limit reached, an event lost to a race with the directory's creation).
 *
 * Bounded: at most maxWatched directories; beyond that a warning, and the scan finds the rest.
 * Cgroups below an attached container (`covered`) are not watched: a container making thousands
 * of child cgroups would otherwise spend the node's budget, and other pods' new containers
 * would wait for the scan. Ones watched before their container was attached are let go when
 * the budget runs out.
 */
import fs from 'node:fs';

/** Files whose modification means a process arrived (or, for cgroup.events, the cgroup's population changed). */
const ACTIVITY_FILES: ReadonlySet<string> = new Set(['cgroup.procs', 'tasks', 'cgroup.events', 'cgroup.threads']);
/** A node of a few thousand containers, and their pods' and QoS classes' directories. */
const DEFAULT_MAX_WATCHED = 20_000;
/**
 * Directories deeper than this below a prefix's parent are not watched: a container's cgroup is
 * 2–4 levels down (/kubepods/burstable/pod<uid>/<id>); deeper ones are made by whatever runs in a
 * container with a delegated cgroup (systemd), which could otherwise spend the node's watch
 * budget. Their processes share their container's namespace, attached already; the scan covers.
 */
const DEFAULT_MAX_DEPTH = 6;

export interface CgroupWatchOptions {
  /** The mount whose paths are keys: the v1 memory hierarchy, or the cgroup2 root. */
  hierarchyRoot: string;
  /** --attach prefixes (string prefixes of keys, as the scan matches them). */
  prefixes: readonly string[];
  /** Something happened in a cgroup whose key starts with a prefix. */
  onActivity: (key: string) => void;
  warn: (key: string, fields: object, message: string) => void;
  /** A cgroup below an attached container: not watched (its namespaces are attached; the scan covers the rest). */
  covered?: (key: string) => boolean;
  maxWatched?: number;
  /** Levels below a prefix's parent directory watched at most (default 6). */
  maxDepth?: number;
}

export class CgroupWatch {
  /** Watched directories by key. */
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private readonly maxWatched: number;
  /** The deepest key watched, per prefix's start key: its depth (in path components) plus maxDepth. */
  private readonly maxDepths: number[] = [];
  private stopped = false;
  private lastLetGoMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: CgroupWatchOptions) {
    this.maxWatched = options.maxWatched ?? DEFAULT_MAX_WATCHED;
  }

  /** Watches every relevant existing directory (a prefix's parent first: "/kubepods" matches "/kubepods.slice"). */
  start(): void {
    for (const prefix of this.options.prefixes) {
      const start = this.startKey(prefix);
      this.maxDepths.push(depthOf(start) + (this.options.maxDepth ?? DEFAULT_MAX_DEPTH));
      this.addTree(start, false);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  /** How many directories are watched. */
  get watched(): number {
    return this.watchers.size;
  }

  /** The deepest existing directory that every key starting with the prefix lies beneath. */
  private startKey(prefix: string): string {
    let key = prefix.endsWith('/') ? prefix.replace(/\/+$/, '') || '/' : parentKey(prefix);
    while (key !== '/' && !isDirectory(this.dirOf(key))) key = parentKey(key);
    return key;
  }

  /** A key starting with a prefix (attach there), or on the way to one (watch for new children). */
  private relevance(key: string): 'match' | 'ancestor' | null {
    const { prefixes } = this.options;
    if (prefixes.some((p) => key.startsWith(p))) return 'match';
    const below = key === '/' ? '/' : `${key}/`;
    if (prefixes.some((p) => p.startsWith(below))) return 'ancestor';
    return null;
  }

  private dirOf(key: string): string {
    return key === '/' ? this.options.hierarchyRoot : this.options.hierarchyRoot + key;
  }

  /** Watches `key` and its relevant subdirectories; `report`: also report matching ones (they are new). */
  private addTree(key: string, report: boolean): void {
    const relevance = this.relevance(key);
    if (relevance === null || this.stopped || this.watchers.has(key)) return;
    if (this.maxDepths.length > 0 && depthOf(key) > Math.max(...this.maxDepths)) return;
    if (this.options.covered?.(key) === true) return;
    if (this.watchers.size >= this.maxWatched) this.letGoOfCovered();
    if (this.watchers.size >= this.maxWatched) {
      this.options.warn('watch-limit', { watched: this.watchers.size, key }, 'too many cgroup directories to watch: new containers there are found by the periodic scan');
      return;
    }
    const dir = this.dirOf(key);
    let watcher: fs.FSWatcher;
    try {
      watcher = fs.watch(dir, { persistent: false }, (_event, name) => this.onEvent(key, name));
    } catch (err) {
      // Gone already (ENOENT), or out of inotify watches (ENOSPC): the scan covers it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.options.warn(`watch:${(err as NodeJS.ErrnoException).code}`, { dir, err: String(err) }, 'cannot watch a cgroup directory');
      return;
    }
    watcher.on('error', () => this.unwatch(key));
    this.watchers.set(key, watcher);
    // Children made before the watch began (a runtime makes nested directories quickly).
    for (const name of subdirectories(dir)) this.addTree(joinKey(key, name), report);
    if (report && relevance === 'match') this.options.onActivity(key);
  }

  private onEvent(key: string, name: string | Buffer | null): void {
    if (this.stopped || name === null) return;
    const child = String(name);
    if (ACTIVITY_FILES.has(child)) {
      if (this.relevance(key) === 'match') this.options.onActivity(key);
      return;
    }
    const childKey = joinKey(key, child);
    if (this.relevance(childKey) === null) return;
    const isDir = isDirectory(this.dirOf(childKey));
    // A child cgroup made or removed (a cgroup is removed only once its children are).
    if (this.watchers.has(childKey)) {
      if (!isDir) this.unwatch(childKey);
    } else if (isDir) {
      this.addTree(childKey, true);
    }
  }

  /** Stops watching every cgroup now below an attached container (it may have been watched before that one was attached). */
  private letGoOfCovered(): void {
    const covered = this.options.covered;
    // One pass over every watch: at most once a second, however fast directories are made.
    const nowMs = Date.now();
    if (covered === undefined || nowMs - this.lastLetGoMs < 1000) return;
    this.lastLetGoMs = nowMs;
    for (const key of [...this.watchers.keys()]) if (covered(key)) this.unwatch(key);
  }

  private unwatch(key: string): void {
    this.watchers.get(key)?.close();
    this.watchers.delete(key);
  }
}

function depthOf(key: string): number {
  return key === '/' ? 0 : key.split('/').length - 1;
}

function parentKey(key: string): string {
  const slash = key.lastIndexOf('/');
  return slash <= 0 ? '/' : key.slice(0, slash);
}

function joinKey(key: string, name: string): string {
  return key === '/' ? `/${name}` : `${key}/${name}`;
}

function isDirectory(dir: string): boolean {
  try {
    return fs.lstatSync(dir).isDirectory();
  } catch {
    return false;
  }
}

function subdirectories(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}
