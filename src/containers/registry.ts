/**
 * Everything the daemon keeps about a container, in one record per container (keyed by its
 * cgroup key), with one lifecycle: created on first sight, refreshed on use, dropped once, by
 * one sweep, through one hook.
 *
 * Drop policy, checked by `sweep`:
 * - its cgroup is gone, or was recreated under the same key (another inode): another container
 *   may take the key, and must start afresh;
 * - otherwise, unused for `idleMs` (10 min), unless it is attached: an attached container keeps
 *   its /containers/<key>/ subtree (and record) until its cgroup is gone.
 */
import fs from 'node:fs';
import { processListDir } from '../cgroup/hierarchy';
import type { CgroupLocation, TaskCounts } from '../cgroup/snapshot';
import type { StatHistory } from '../views/stat';

/** The load sampler's numbers for one container (the algorithm is in loadavg/sampler.ts). */
export interface LoadState {
  /** Fixed-point averages (FIXED_1 = 1.0) over 1, 5 and 15 minutes. */
  load1: number;
  load5: number;
  load15: number;
  /** Threads in state R, and all threads, at the last sample. */
  running: number;
  total: number;
  /** Sampling period of the last sample; null until the first one. */
  sampledPeriod: number | null;
}

export interface ContainerRecord {
  readonly key: string;
  /** Where its cgroup is, as its latest reader's /proc/<pid>/cgroup said. */
  location: CgroupLocation;
  /** Its process-list directory and that directory's inode when first seen; null = none to check. */
  readonly cgroupDir: { path: string; ino: number } | null;
  lastUsedMs: number;
  /** /proc/stat's previous counters, so that none goes backwards. */
  statHistory: StatHistory | null;
  /** The last task count (procs_running/procs_blocked), reused for TASK_COUNTS_TTL_MS. */
  taskCounts: { atMs: number; counts: TaskCounts } | null;
  /** Null until its loadavg is first read: only those containers are sampled. */
  load: LoadState | null;
  /** The env opt-out's last answer (switches/envOptOut.ts). */
  envOptOut: { atMs: number; optedOut: boolean } | null;
  /** Set while it has a /containers/<key>/ subtree: where its cgroup is, learned from one of its processes. */
  attachedLocation: CgroupLocation | null;
  // Page-cache content of the attached files, when it is kept, belongs here: dropped with the record.
}

export type DropReason = 'cgroup-gone' | 'idle';

export interface ContainerRegistryOptions {
  /** An unattached container unused this long is dropped. */
  idleMs: number;
  /** Called once per record made (metrics). */
  onCreate?: (record: ContainerRecord) => void;
  /** Called once per dropped record, after it left the registry. */
  onDrop?: (record: ContainerRecord, why: DropReason) => void;
}

export class ContainerRegistry {
  private readonly records = new Map<string, ContainerRecord>();

  constructor(private readonly options: ContainerRegistryOptions) {}

  /** The container's record, created on first sight; marks it used now. */
  use(location: CgroupLocation, nowMs: number): ContainerRecord {
    const record = this.recordFor(location, nowMs);
    record.location = location;
    record.lastUsedMs = nowMs;
    return record;
  }

  /** The attach manager added the container's subtree; `location` is from one of its processes. */
  markAttached(location: CgroupLocation): void {
    this.recordFor(location, Date.now()).attachedLocation = location;
  }

  /** Where an attached container is; undefined when it has no subtree (any more). */
  attachedLocation(key: string): CgroupLocation | undefined {
    return this.records.get(key)?.attachedLocation ?? undefined;
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

  /** Drops what the policy above says; one stat per record. Returns how many were dropped. */
  sweep(nowMs: number): number {
    const dropped: [ContainerRecord, DropReason][] = [];
    for (const record of this.records.values()) {
      const why = dropReason(record, nowMs, this.options.idleMs);
      if (why !== null) dropped.push([record, why]);
    }
    // Out of the map before any hook runs: a hook that throws cannot make a record drop twice.
    for (const [record] of dropped) this.records.delete(record.key);
    for (const [record, why] of dropped) this.options.onDrop?.(record, why);
    return dropped.length;
  }

  private recordFor(location: CgroupLocation, nowMs: number): ContainerRecord {
    let record = this.records.get(location.key);
    if (record === undefined) {
      record = {
        key: location.key, location, cgroupDir: identifyCgroupDir(location), lastUsedMs: nowMs,
        statHistory: null, taskCounts: null, load: null, envOptOut: null, attachedLocation: null,
      };
      this.records.set(location.key, record);
      this.options.onCreate?.(record);
    }
    return record;
  }
}

function dropReason(record: ContainerRecord, nowMs: number, idleMs: number): DropReason | null {
  const exists = cgroupStillThere(record);
  if (exists === false) return 'cgroup-gone';
  // Attached and its cgroup known to exist: kept however long nobody reads it.
  if (record.attachedLocation !== null && exists) return null;
  return nowMs - record.lastUsedMs >= idleMs ? 'idle' : null;
}

/** Whether the directory the record was made for is still there, as the same directory; null = cannot tell. */
function cgroupStillThere(record: ContainerRecord): boolean | null {
  if (record.cgroupDir === null) return null;
  // throwIfNoEntry: a vanished cgroup is the common case here, and needs no exception.
  const stat = fs.statSync(record.cgroupDir.path, { throwIfNoEntry: false });
  return stat !== undefined && stat.ino === record.cgroupDir.ino;
}

function identifyCgroupDir(location: CgroupLocation): ContainerRecord['cgroupDir'] {
  const listed = processListDir(location);
  if (listed === null) return null;
  const stat = fs.statSync(listed.dir, { throwIfNoEntry: false });
  // Gone already: nothing to tell a recreation by, so the idle policy applies.
  return stat === undefined ? null : { path: listed.dir, ino: stat.ino };
}
