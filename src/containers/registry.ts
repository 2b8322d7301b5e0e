/**
 * Everything the daemon keeps about a container, in one record per container (keyed by its
 * cgroup key), with one lifecycle: created on first sight, refreshed on use, dropped once, by
 * one sweep, through one hook.
 *
 * A record belongs to one cgroup directory, told by its inode. `sweep` checks at most
 * `maxChecksPerSweep` records, going on where the last one stopped (each record is checked
 * every ceil(size / maxChecksPerSweep) sweeps), one stat each:
 * - its cgroup is gone: dropped;
 * - its cgroup was recreated under the same key (another inode: a restart policy, LXC, systemd
 *   units): replaced in place by a fresh record that keeps only the attach state, and no hook
 *   runs, since a /containers/<key>/ subtree serves whoever is that cgroup now;
 * - otherwise, unused for `idleMs` (10 min): dropped, unless it is attached. An attached
 *   container keeps its subtree (and record) until its cgroup is gone. If its directory was not
 *   there when the record was made, each check looks again: still not there, it is gone; there
 *   now, it is a recreation (above); no directory to look for, it is kept while attached.
 * use() checks nothing (a request pays no stat): a recreation is found by the sweep.
 * markAttached(), rare, checks at once. Past `maxRecords`, a new record first evicts the least
 * recently used unattached ones.
 */
import fs from 'node:fs';
import { processListDir } from '../cgroup/hierarchy';
import type { CgroupLocation, TaskCounts } from '../cgroup/snapshot';
import type { StatHistory } from '../views/stat';
import type { DiskHistory } from '../views/diskstats';
import type { VersionedContent } from '../fuse/fileBackend';
import type { ServedPath } from '../fuse/layout';
import { TaskStatFiles, taskFdBudget } from '../host/taskStatFiles';

/** The load sampler's numbers for one container (the algorithm is in loadavg/sampler.ts). */
export interface LoadState {
  /** Fixed-point averages (FIXED_1 = 1.0) over 1, 5 and 15 minutes. */
  load1: number;
  load5: number;
  load15: number;
  /** Threads in state R, in state D, and all threads, at the last sample. */
  running: number;
  blocked?: number;
  total: number;
  /**
   * The cgroup's activity mark (CPU time used and task count) at the last full count; the same
   * mark at the next sample means nothing in it ran or came or went, and the count is reused.
   */
  activityMark?: string | null;
  /** Sampling period of the last sample; null until the first one. */
  sampledPeriod: number | null;
  /** When its loadavg was last read, by the sampler's clock: unread for long, it is no longer sampled. */
  lastReadMs: number;
}

/** A cgroup directory and its inode, which tells a recreated directory from the one first seen. */
export interface CgroupDirIdentity {
  path: string;
  ino: number;
}

/** A process by pid and start time (clock ticks since boot): not mistaken for a later one with its pid. */
export interface HungProcess {
  pid: number;
  startTicks: bigint;
}

export interface ContainerRecord {
  readonly key: string;
  /** Where its cgroup is, as its latest reader's /proc/<pid>/cgroup said. */
  location: CgroupLocation;
  /** The process-list directory it was made for; null = none was there, or there is none to look for. */
  readonly cgroupDir: CgroupDirIdentity | null;
  lastUsedMs: number;
  /** /proc/stat's previous counters, so that none goes backwards. */
  statHistory: StatHistory | null;
  /** /proc/diskstats' (and vmstat's pgpgin/pgpgout) previous counters, so that none goes backwards. */
  diskHistory: DiskHistory | null;
  /** The last task count (procs_running/procs_blocked), reused for TASK_COUNTS_TTL_MS. */
  taskCounts: { atMs: number; counts: TaskCounts } | null;
  /** Its tasks' /proc/<tid>/stat files kept open between counts (closed when it is dropped). */
  taskStatFiles: TaskStatFiles | null;
  /** Null until its loadavg is read (and again once unread for long): only the others are sampled. */
  load: LoadState | null;
  /** The env opt-out's last answer (switches/envOptOut.ts), and the first process whose environ read never ended. */
  envOptOut: { atMs: number; optedOut: boolean; hung: HungProcess | null } | null;
  /** Set while it has a /containers/<key>/ subtree: where its cgroup is, learned from one of its processes. */
  attachedLocation: CgroupLocation | null;
  /**
   * The content of its attached views as the kernel's page cache was last given it, per file
   * (with its version, see FileBackend.currentContent); null until one is read.
   */
  pageContent: Map<ServedPath, VersionedContent> | null;
  /** Its views as last rendered, and when (reused for a few ms: backend.ts, RENDER_REUSE_MS). */
  rendered: Map<ServedPath, { bytes: Buffer; atMs: number }> | null;
}

export type DropReason = 'cgroup-gone' | 'idle' | 'evicted';

/** A sweep checks at most this many records (one stat each, ~13 ms of CPU: bench/registry-sweep.js). */
export const DEFAULT_MAX_CHECKS_PER_SWEEP = 2000;
/** A delegated cgroup subtree can make 100k cgroups, each a reader: memory and sweeps stay bounded at this many. */
export const DEFAULT_MAX_RECORDS = 10_000;
/** Attached containers at or below one tenant (never evicted: a container making namespaces in child cgroups would add one each). */
export const MAX_ATTACHED_PER_TENANT = 16;

export interface ContainerRegistryOptions {
  /** An unattached container unused this long is dropped. */
  idleMs: number;
  /** Records checked per sweep; the next sweep goes on from there (default DEFAULT_MAX_CHECKS_PER_SWEEP). */
  maxChecksPerSweep?: number;
  /** Records kept before unattached ones are evicted (default DEFAULT_MAX_RECORDS); attached ones are never evicted. */
  maxRecords?: number;
  /** Called once per record made, including a fresh one for a recreated cgroup (metrics). */
  onCreate?: (record: ContainerRecord) => void;
  /** Called once per dropped record, after it left the registry. */
  onDrop?: (record: ContainerRecord, why: DropReason) => void;
}

/** What a record's cgroup directory is now. */
type Look = { found: 'same' | 'gone' | 'nothing-to-look-for' } | { found: 'other'; identity: CgroupDirIdentity };

export class ContainerRegistry {
  private readonly records = new Map<string, ContainerRecord>();
  private readonly maxChecksPerSweep: number;
  private readonly maxRecords: number;
  /** Where the last sweep stopped. A Map iterator stays valid across deletions and insertions. */
  private cursor: Iterator<ContainerRecord>;

  constructor(private readonly options: ContainerRegistryOptions) {
    this.maxChecksPerSweep = options.maxChecksPerSweep ?? DEFAULT_MAX_CHECKS_PER_SWEEP;
    this.maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
    if (!(this.maxChecksPerSweep >= 1)) throw new RangeError(`maxChecksPerSweep must be >= 1: ${this.maxChecksPerSweep}`);
    if (!(this.maxRecords >= 1)) throw new RangeError(`maxRecords must be >= 1: ${this.maxRecords}`);
    this.cursor = this.records.values();
  }

  /** The container's record, created on first sight; marks it used now. */
  use(location: CgroupLocation, nowMs: number): ContainerRecord {
    const record = this.records.get(location.key) ?? this.create(location, nowMs);
    record.location = location;
    record.lastUsedMs = nowMs;
    return record;
  }

  /**
   * The attach manager added the container's subtree; `location` is from one of its processes.
   * Its record is checked first (one stat): one made for an earlier cgroup under this key is
   * replaced, so the sweep does not take the new container's subtree for a gone one.
   */
  markAttached(location: CgroupLocation): void {
    let record = this.records.get(location.key);
    if (record === undefined) {
      record = this.create(location, Date.now());
    } else {
      const look = lookAt(record.cgroupDir, location);
      if (look.found === 'other') record = this.renew(record, look.identity);
    }
    record.attachedLocation = location;
  }

  /** Where an attached container is; undefined when it has no subtree (any more). */
  attachedLocation(key: string): CgroupLocation | undefined {
    return this.records.get(key)?.attachedLocation ?? undefined;
  }

  /**
   * The tenant cgroup `key` belongs to, for per-tenant bounds (open files, PSI triggers): the
   * outermost attached container that is `key` or one of its ancestors (a container may make
   * child cgroups, even get them attached as containers of their own, but never a cgroup above
   * its own), else `key` itself.
   */
  tenantOf(key: string): string {
    // The root cgroup is never an ancestor tenant: all readers would share one share.
    for (let slash = key.indexOf('/', 1); ; slash = key.indexOf('/', slash + 1)) {
      const ancestor = slash < 0 ? key : key.slice(0, slash);
      if (this.records.get(ancestor)?.attachedLocation) return ancestor;
      if (slash < 0) return key;
    }
  }

  /** Whether `key` may get a subtree: it has one, or its tenant has fewer than MAX_ATTACHED_PER_TENANT. */
  mayAttach(key: string): boolean {
    const tenant = this.tenantOf(key);
    if (tenant === key || this.records.get(key)?.attachedLocation) return true;
    let held = 0;
    for (const r of this.records.values()) if (r.attachedLocation && r.key.startsWith(`${tenant}/`)) held++;
    return held + 1 < MAX_ATTACHED_PER_TENANT;
  }

  find(key: string): ContainerRecord | undefined {
    return this.records.get(key);
  }

  all(): IterableIterator<ContainerRecord> {
    return this.records.values();
  }

  get size(): number {
    return this.records.size;
  }

  /**
   * Applies the policy above to the next `maxChecksPerSweep` records, so a record is checked
   * every ceil(size / maxChecksPerSweep) sweeps. Returns how many were dropped.
   */
  sweep(nowMs: number): number {
    const dropped: [ContainerRecord, DropReason][] = [];
    for (const record of this.nextBatch()) {
      const why = this.check(record, nowMs);
      if (why !== null) dropped.push([record, why]);
    }
    return this.drop(dropped);
  }

  /** Up to maxChecksPerSweep records from where the last sweep stopped, none twice. */
  private nextBatch(): ContainerRecord[] {
    const batch: ContainerRecord[] = [];
    const wanted = Math.min(this.maxChecksPerSweep, this.records.size);
    let restarted = false;
    while (batch.length < wanted) {
      const next = this.cursor.next();
      if (next.done !== true) {
        batch.push(next.value);
      } else if (restarted) {
        break;
      } else {
        // An exhausted iterator stays exhausted, even after insertions: start over.
        this.cursor = this.records.values();
        restarted = true;
      }
    }
    return batch;
  }

  private check(record: ContainerRecord, nowMs: number): DropReason | null {
    // Unattached and never identified: nothing to remove, so the idle rule alone, without a stat.
    if (record.cgroupDir === null && record.attachedLocation === null) return idleReason(record, nowMs, this.options.idleMs);
    const look = lookAt(record.cgroupDir, record.attachedLocation ?? record.location);
    if (look.found === 'gone') return 'cgroup-gone';
    if (look.found === 'other') {
      this.renew(record, look.identity);
      return null;
    }
    if (record.attachedLocation !== null) return null;
    return idleReason(record, nowMs, this.options.idleMs);
  }

  private create(location: CgroupLocation, nowMs: number): ContainerRecord {
    if (this.records.size >= this.maxRecords) this.evictLeastRecentlyUsed();
    const identity = lookAt(null, location);
    return this.add(newRecord(location, identity.found === 'other' ? identity.identity : null, nowMs));
  }

  /** A fresh record for the cgroup now under the record's key: nothing of the old container but its subtree. */
  private renew(old: ContainerRecord, identity: CgroupDirIdentity): ContainerRecord {
    const fresh = newRecord(old.location, identity, old.lastUsedMs);
    fresh.attachedLocation = old.attachedLocation;
    return this.add(fresh);
  }

  private add(record: ContainerRecord): ContainerRecord {
    // Setting a key already there keeps its place in the map, so the sweep's cursor does too.
    this.records.set(record.key, record);
    this.options.onCreate?.(record);
    return record;
  }

  /** The oldest 1% of the unattached records: one scan per hundred records made at the cap. */
  private evictLeastRecentlyUsed(): void {
    const unattached = [...this.records.values()].filter((record) => record.attachedLocation === null);
    unattached.sort((a, b) => a.lastUsedMs - b.lastUsedMs);
    const count = Math.max(1, Math.floor(this.maxRecords / 100));
    this.drop(unattached.slice(0, count).map((record): [ContainerRecord, DropReason] => [record, 'evicted']));
  }

  private drop(dropped: [ContainerRecord, DropReason][]): number {
    // Out of the map before any hook runs: a hook that throws cannot make a record drop twice.
    for (const [record] of dropped) this.records.delete(record.key);
    for (const [record, why] of dropped) this.options.onDrop?.(record, why);
    return dropped.length;
  }
}

function newRecord(location: CgroupLocation, cgroupDir: CgroupDirIdentity | null, nowMs: number): ContainerRecord {
  return {
    key: location.key, location, cgroupDir, lastUsedMs: nowMs,
    statHistory: null, diskHistory: null, taskCounts: null, taskStatFiles: null, load: null, envOptOut: null, attachedLocation: null, pageContent: null, rendered: null,
  };
}

function idleReason(record: ContainerRecord, nowMs: number, idleMs: number): DropReason | null {
  return nowMs - record.lastUsedMs >= idleMs ? 'idle' : null;
}

/**
 * One stat: whether the directory `known` is still there as itself. With none known, whether
 * `location`'s process-list directory is there now ('other', with its identity): a record made
 * while none was there was made for another cgroup than the one there now.
 */
function lookAt(known: CgroupDirIdentity | null, location: CgroupLocation): Look {
  const dir = known?.path ?? processListDir(location)?.dir;
  if (dir === undefined) return { found: 'nothing-to-look-for' };
  // throwIfNoEntry: a vanished cgroup is the common case here, and needs no exception.
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (stat === undefined) return { found: 'gone' };
  if (known !== null && stat.ino === known.ino) return { found: 'same' };
  return { found: 'other', identity: { path: dir, ino: stat.ino } };
}

/** The container's kept task files (host/taskStatFiles.ts), made on first use under the daemon's budget. */
export function taskStatFilesOf(record: ContainerRecord): TaskStatFiles {
  record.taskStatFiles ??= new TaskStatFiles(taskFdBudget);
  return record.taskStatFiles;
}

/** Every cgroup directory the container's views read (its files kept open are closed when it goes). */
export function cgroupDirsOf(record: ContainerRecord): string[] {
  const dirs: string[] = [];
  for (const location of [record.location, record.attachedLocation]) {
    if (location === null) continue;
    for (const dir of Object.values(location.dirs)) if (dir !== undefined) dirs.push(dir);
    if (location.unifiedDir !== null) dirs.push(location.unifiedDir);
  }
  return dirs;
}
