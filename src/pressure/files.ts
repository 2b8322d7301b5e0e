/**
 * /proc/pressure/{cpu,memory,io}: what a reader sees, and the PSI triggers written to them.
 *
 * An isolated container reads its cgroup's `<resource>.pressure` from the cgroup2 hierarchy (on a
 * hybrid host the "unified" mount keeps PSI per cgroup even without controllers). A trigger
 * written to an open file is written to the real file of the same cgroup, opened for that open
 * file alone: the kernel validates it (its errno goes back) and its fd is what poll(2) on the
 * FUSE file waits on (fuse/openFiles.ts, native's poll watches). Readers that are not isolated
 * (switch off, opted out, the host) get the host's /proc/pressure/*, and their triggers go there.
 */
import fs from 'node:fs';
import path from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Caller, Errno, FileRequest, TriggerLease, WriteRequest } from '../fuse/fileBackend';
import type { Decision } from '../backend';
import type { ContainerRegistry } from '../containers/registry';
import { isPressurePath, type PressurePath } from '../fuse/layout';
import { CgroupParseError, type CgroupLocation, type PressureResource } from '../cgroup/snapshot';
import { RateLimitedLog, type Logger } from '../log';
import { readV2Pressure } from '../cgroup/v2/pressure';
import { renderPressure } from '../views/pressure';
import { FileReadError, readBoundedBuffer, readBoundedText, TASK_FILE_MAX_BYTES } from '../host/boundedRead';
import { hasSysResource, procTriggerPayload, unprivilegedWindowRefused } from './trigger';

const { errno: E } = osConstants;

/** Triggers (each one open fd of the daemon) at once, in all. */
export const MAX_TRIGGERS = 1024;
/** Triggers at once per container (the host's file counts as one "container"). */
export const MAX_TRIGGERS_PER_CONTAINER = 32;

/** Where a pressure file's content comes from: a cgroup2 directory, or the host's file. */
export type PressureSource = { cgroupDir: string; key: string } | { host: true };

const HOST_KEY = '(host)';

/** What decides whether a reader is isolated, and as which container (the backend). */
export interface Decider {
  decide: (caller: Caller) => Decision;
  decideFor: (location: CgroupLocation) => Decision;
}

export class PressureFiles {
  private total = 0;
  private readonly perContainer = new Map<string, number>();
  private readonly rateLimited = new RateLimitedLog(60_000);

  private readonly procRoot: string;
  private readonly unifiedRoot: string | null;

  /** `unifiedRoot`: where the cgroup2 hierarchy is mounted (null: none, a pure v1 host). */
  constructor(
    roots: { procRoot: string; unifiedRoot: string | null },
    private readonly logger: Logger,
    private readonly decider: Decider,
    private readonly containers: Pick<ContainerRegistry, 'attachedLocation'>,
  ) {
    this.procRoot = roots.procRoot;
    this.unifiedRoot = roots.unifiedRoot;
  }

  /**
   * Where the pressure of a reader comes from: an isolated container's cgroup2 dir, else the
   * host's file (`location` null: not isolated). null (ENOENT) when the container has no cgroup2
   * dir of its own: a pure v1 host, or a runtime that left it in the cgroup2 root, whose PSI is
   * the whole host's.
   */
  sourceOf(location: CgroupLocation | null): PressureSource | null {
    if (location === null) return { host: true };
    const dir = location.unifiedDir;
    if (dir === null || dir === this.unifiedRoot) return null;
    return { cgroupDir: dir, key: location.key };
  }

  /**
   * The source a request's file shows, as the views decide: a per-container copy's container
   * (ENOENT once it is gone), else the caller's cgroup; the host's where not isolated.
   */
  sourceFor(caller: Caller, container: string | undefined): PressureSource | null | Errno {
    const location = container === undefined ? null : this.containers.attachedLocation(container);
    if (container !== undefined && !location) return { errno: E.ENOENT };
    const decision = location ? this.decider.decideFor(location) : this.decider.decide(caller);
    return this.sourceOf(decision.isolated ? decision.container.location : null);
  }

  /** A read of a pressure file (FileBackend.read). */
  read(request: FileRequest & { file: PressurePath }): Buffer | Errno {
    const source = this.sourceFor(request.caller, request.container);
    return source !== null && 'errno' in source ? source : this.readFrom(request.file, source);
  }

  /** A PSI trigger written to a pressure file (FileBackend.openTrigger). */
  openTrigger({ file, caller, container, data }: WriteRequest): TriggerLease | Errno {
    if (!isPressurePath(file)) return { errno: E.EACCES };
    const source = this.sourceFor(caller, container);
    return source !== null && 'errno' in source ? source : this.openTriggerOn(file, source, caller, data);
  }

  get triggers(): number {
    return this.total;
  }

  /**
   * The file's content; ENOENT when there is no such file (PSI off, pure v1), EIO (logged) for a
   * malformed one, the kernel's errno for an unreadable host file.
   */
  readFrom(file: PressurePath, source: PressureSource | null): Buffer | Errno {
    if (source === null) return { errno: E.ENOENT };
    try {
      if ('host' in source) return readBoundedBuffer(path.join(this.procRoot, 'pressure'), resourceOf(file));
      const pressure = readV2Pressure(source.cgroupDir, resourceOf(file));
      return pressure === null ? { errno: E.ENOENT } : Buffer.from(renderPressure(pressure));
    } catch (err) {
      if (this.rateLimited.allow(`read:${file}:${'host' in source ? HOST_KEY : source.key}`, Date.now())) {
        const detail = err instanceof CgroupParseError ? { dir: err.dir, cgroupFile: err.file } : {};
        this.logger.error({ file, err: String(err), ...detail }, 'cannot read the pressure file');
      }
      const code = err instanceof FileReadError ? (E as Record<string, number>)[err.code] : undefined;
      return { errno: code ?? E.EIO };
    }
  }

  /**
   * Writes the trigger `data` (as written to /proc/pressure/<resource> by `writer`) to the real
   * file of `source`, on an fd of its own: the lease, or the errno the kernel (or a bound) gave.
   */
  openTriggerOn(file: PressurePath, source: PressureSource | null, writer: Caller, data: Buffer): TriggerLease | Errno {
    const result = this.writeTrigger(file, source, writer, data);
    if ('errno' in result && this.rateLimited.allow(`trigger:${file}:${result.errno}`, Date.now())) {
      this.logger.info({ file, pid: writer.pid, errno: result.errno, triggers: this.total }, 'PSI trigger refused');
    }
    return result;
  }

  private writeTrigger(file: PressurePath, source: PressureSource | null, writer: Caller, data: Buffer): TriggerLease | Errno {
    if (source === null) return { errno: E.ENOENT };
    const isHost = 'host' in source;
    const payload = isHost ? data : procTriggerPayload(data);
    if (payload === null) return { errno: E.EINVAL };
    if (unprivilegedWindowRefused(payload.toString('latin1'), this.privileged(writer))) return { errno: E.EINVAL };
    const key = isHost ? HOST_KEY : source.key;
    const used = this.perContainer.get(key) ?? 0;
    if (this.total >= MAX_TRIGGERS || used >= MAX_TRIGGERS_PER_CONTAINER) return { errno: E.EMFILE };
    const realPath = isHost ? path.join(this.procRoot, 'pressure', resourceOf(file)) : path.join(source.cgroupDir, `${resourceOf(file)}.pressure`);
    let fd: number;
    try {
      fd = fs.openSync(realPath, fs.constants.O_RDWR | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
    } catch (err) {
      return errnoOf(err);
    }
    try {
      fs.writeSync(fd, payload);
    } catch (err) {
      fs.closeSync(fd);
      return errnoOf(err);
    }
    this.total++;
    this.perContainer.set(key, used + 1);
    let released = false;
    return {
      fd,
      release: (closeFd) => {
        if (released) return;
        released = true;
        if (closeFd) fs.closeSync(fd);
        this.total--;
        const left = (this.perContainer.get(key) ?? 1) - 1;
        if (left > 0) this.perContainer.set(key, left);
        else this.perContainer.delete(key);
      },
    };
  }

  /** Whether the writer has CAP_SYS_RESOURCE (the kernel asks it of the opener). Unknown: no. */
  private privileged(writer: Caller): boolean {
    if (writer.pid <= 0) return false;
    try {
      return hasSysResource(readBoundedText(path.join(this.procRoot, String(writer.pid)), 'status', TASK_FILE_MAX_BYTES));
    } catch {
      return false;
    }
  }
}

function resourceOf(file: PressurePath): PressureResource {
  return path.basename(file) as PressureResource;
}

function errnoOf(err: unknown): Errno {
  const code = (err as NodeJS.ErrnoException).code;
  const errno = code === undefined ? undefined : (E as Record<string, number>)[code];
  return { errno: errno ?? E.EIO };
}
