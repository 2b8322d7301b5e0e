/**
 * Writes to the two switch files, decided as the kernel decides a /proc/sys write: who may write
 * is checked at open(2) for writing, against the opener (proc_sys_permission: root's 0644 files
 * are EACCES to anyone else), and the open file carries that decision. A privileged process
 * handed an fd an unprivileged one opened (stdout of a setuid program, SCM_RIGHTS) gets nothing
 * from it, and a root opener's fd works for whoever writes through it.
 */
import { constants as osConstants } from 'node:os';
import type { Caller, Errno, FileRequest, WriteGrant } from '../fuse/fileBackend';
import { isControlPath, type ControlPath } from '../fuse/layout';
import type { CgroupLocation } from '../cgroup/snapshot';
import type { SwitchStore } from './store';
import { parseSwitchWrite } from './controlInput';
import { inHostPidNamespace } from '../identity/pidNamespace';
import { RateLimitedLog, type Logger } from '../log';

const { errno: E } = osConstants;

/**
 * Switch entries at or below one tenant (an attached container and its child cgroups): each is
 * kept and persisted, and a write through the shared file adds one for the writer's own cgroup,
 * so a container making child cgroups could otherwise grow the state without end.
 */
export const MAX_SWITCH_ENTRIES_PER_CONTAINER = 64;
/** Switch entries in all (tenants not attached are each a cgroup, which a delegated subtree multiplies). */
export const MAX_SWITCH_ENTRIES = 10_000;

export interface ControlWritesOptions {
  procRoot: string;
  switches: SwitchStore;
  logger: Logger;
  /** Where an attached container is (undefined: it has no subtree any more). */
  attachedLocation: (key: string) => CgroupLocation | undefined;
  /** A pid's cgroup (null: not placed, already logged). */
  locate: (pid: number) => CgroupLocation | null;
  /** The tenant a cgroup belongs to (registry.tenantOf): whose share of the switch entries a new one takes. */
  tenantOf: (key: string) => string;
  /** Called after a switch changed. */
  changed: () => void;
}

export class ControlWrites {
  private readonly rateLimited = new RateLimitedLog(60_000);

  constructor(private readonly options: ControlWritesOptions) {}

  /**
   * An open of a switch file for writing: what writes through it may change, or the errno the
   * open answers. Through a per-container copy, that container's switch; through the shared
   * file, the opener's cgroup's. Either way only the opener's own container's.
   */
  authorize({ file, caller, container }: FileRequest): WriteGrant | Errno {
    if (!isControlPath(file)) return { errno: E.EACCES };
    if (caller.uid !== 0) return { ...this.refuse(file, caller, 'opener is not uid 0'), errno: E.EACCES };
    if (file === '/proc/sys/kernel/stats_isolated') {
      if (!inHostPidNamespace(this.options.procRoot, caller.pid)) return this.refuse(file, caller, 'opener is not in the host pid namespace');
      return { file, opener: caller, container: null };
    }
    const location = container !== undefined ? this.containerOfOpener(file, caller, container) : this.options.locate(caller.pid);
    if (location === null) return { errno: E.ESRCH };
    if ('errno' in location) return location;
    if (location.key === '/') return this.refuse(file, caller, "the host's root cgroup is not a container");
    return { file, opener: caller, container: location.key };
  }

  /** A write through an open file `grant` was given for; answers the bytes accepted once persisted. */
  write(grant: WriteGrant, data: Buffer, offset: number): number | Errno | Promise<number | Errno> {
    const value = parseSwitchWrite(data, offset);
    if (value === null) return { errno: E.EINVAL };
    const { switches, logger } = this.options;
    const what = grant.container === null ? 'kernel.stats_isolated' : 'kernel.container_stats_isolated';
    const container = grant.container === null ? {} : { container: grant.container };
    if (grant.container !== null && !this.hasRoomFor(grant.container)) return { errno: E.ENOSPC };
    const persisted = switches.setDurably(grant.container, value);
    // The new value is served at once (as the kernel's is once written); the write is answered once durable.
    this.options.changed();
    return persisted.then(() => {
      logger.info({ ...container, value: value ? 1 : 0, pid: grant.opener.pid }, `${what} changed`);
      return data.length;
    }, (err: unknown) => {
      logger.error({ err: String(err), ...container }, `cannot persist ${what}: write refused`);
      this.options.changed();
      return { errno: E.EIO };
    });
  }

  /**
   * The container an open of its per-container copy may change: only when the opener is in that
   * container's cgroup or below it. The copy is visible wherever the mount is (the host, any pod
   * given the mount), so being able to open it proves nothing; host root is no exception (it
   * changes a container's switch from inside it, as the kernel's write did).
   */
  private containerOfOpener(file: ControlPath, caller: Caller, container: string): CgroupLocation | Errno | null {
    const target = this.options.attachedLocation(container);
    if (!target) return null; // the container went away since its dir was made
    const opener = this.options.locate(caller.pid);
    if (opener !== null && isSameOrBelow(opener.key, target.key)) return target;
    return this.refuse(file, caller, 'opener is not in the container whose copy it opens',
      { container: target.key, openerCgroup: opener?.key ?? null });
  }

  /** Whether a write may set `key`'s entry: one there already, or room in its tenant's share and in all. */
  private hasRoomFor(key: string): boolean {
    const { switches } = this.options;
    if (switches.hasContainerEntry(key)) return true;
    const keys = switches.containerKeys();
    const tenant = this.options.tenantOf(key);
    const held = keys.filter((k) => isSameOrBelow(k, tenant)).length;
    if (held < MAX_SWITCH_ENTRIES_PER_CONTAINER && keys.length < MAX_SWITCH_ENTRIES) return true;
    if (this.rateLimited.allow(`full:${tenant}`, Date.now())) {
      const why = held >= MAX_SWITCH_ENTRIES_PER_CONTAINER ? 'tenant at its share' : 'node-wide cap';
      this.options.logger.warn({ container: key, tenant, tenantEntries: held, entries: keys.length, why }, 'too many switch entries: write refused (ENOSPC)');
    }
    return false;
  }

  private refuse(file: ControlPath, caller: Caller, why: string, detail: object = {}): Errno {
    // Rate-limited per file, reason and opener: a container opening in a loop must not flood the log.
    if (this.rateLimited.allow(`refuse:${file}:${why}:${caller.uid}:${JSON.stringify(detail)}`, Date.now())) {
      this.options.logger.warn({ file, pid: caller.pid, uid: caller.uid, why, ...detail }, 'control write refused');
    }
    return { errno: E.EPERM };
  }
}

/** Whether cgroup `key` is `container` itself or one of its descendants (paths, not prefixes). */
export function isSameOrBelow(key: string, container: string): boolean {
  if (key === container) return true;
  const prefix = container.endsWith('/') ? container : `${container}/`;
  return key.startsWith(prefix);
}
