/**
 * What the FUSE side asks of the rest of isolfs: a served file's bytes as a caller sees them, and
 * what to do with a write to a control file. src/backend.ts is the implementation.
 */
import type { ServedPath } from './layout';

/** Who made a request, from the FUSE request header. pid is a thread id (0: not visible to us). */
export interface Caller {
  pid: number;
  uid: number;
  gid: number;
}

/** An errno to answer with, e.g. { errno: E.EINVAL }. */
export interface Errno {
  errno: number;
}

export function isErrno(value: unknown): value is Errno {
  return typeof value === 'object' && value !== null && 'errno' in value && !Buffer.isBuffer(value);
}

/** What the backend is asked about: a served file, and who asks. */
export interface FileRequest {
  file: ServedPath;
  caller: Caller;
  /**
   * Set for the per-container copies under /containers/<key>/: the content is that
   * container's, whoever reads it.
   */
  container?: string;
}

/** A per-container file (container set), whoever reads it. */
export interface ContainerFileRequest {
  file: ServedPath;
  container: string;
}

/** A per-container file's content now, and its version: a new version means new bytes. */
export interface VersionedContent {
  bytes: Buffer;
  /** Never reused for other bytes, whatever container or file. */
  version: number;
}

/** A write to a control file: the bytes and the offset they were written at. */
export interface WriteRequest extends FileRequest {
  data: Buffer;
  offset: number;
}

/**
 * What an open for writing was allowed, decided at open against the opener, as the kernel checks
 * /proc/sys permissions and a PSI trigger's privilege (the file's f_cred) at open(2): the open
 * file carries it, whoever writes through it later.
 */
export interface WriteGrant {
  file: ServedPath;
  /** Who opened the file for writing. */
  opener: Caller;
  /** A switch file: the container whose switch writes change (null: the host's switch). */
  container: string | null;
  /** A pressure file: whether the opener had CAP_SYS_RESOURCE (the kernel's unprivileged-trigger rule). */
  privileged?: boolean;
}

/** A write through an open file, with what its open was allowed. */
export interface GrantedWrite {
  grant: WriteGrant;
  data: Buffer;
  offset: number;
}

/** A PSI trigger's real fd (a kernel pressure file the trigger was written to), until released. */
export interface TriggerLease {
  fd: number;
  /** Once. `closeFd`: false when the fd was handed to native, which closes it. */
  release: (closeFd: boolean) => void;
}

export interface FileBackend {
  /**
   * The whole content of the file as the caller sees it, rendered at open and again for a
   * re-read from offset 0 on the same handle.
   */
  read: (request: FileRequest) => Buffer | Errno;
  /**
   * A per-container file's content now (rendered afresh), for trees whose content the kernel
   * caches: its version changes only when its bytes do.
   */
  currentContent: (request: ContainerFileRequest) => VersionedContent | Errno;
  /**
   * An open for writing of a writable file (a control or a pressure file): what writes through it
   * may do, or the errno the open answers (EACCES for a non-root opener of a switch file).
   */
  authorizeWrite: (request: FileRequest) => WriteGrant | Errno;
  /** A write to a control file through an open authorizeWrite allowed; the bytes accepted or an errno. */
  write: (request: GrantedWrite) => number | Errno | Promise<number | Errno>;
  /**
   * A write to a pressure file (a PSI trigger), as its opener (`caller`, with `privileged` as
   * authorizeWrite found it): the real fd it was written to, whose POLLPRI events the open
   * file's pollers wait for; or an errno (the kernel's, or a bound's).
   */
  openTrigger?: (request: WriteRequest & { privileged?: boolean }) => TriggerLease | Errno;
  /**
   * How many cpuN/ directories of /sys/devices/system/cpu the caller sees: cpu0 to
   * cpu<count-1>; null: the host's own. Asked at every LOOKUP and READDIR of those names, whose
   * answer depends on the reader.
   */
  cpuDirCount?: (caller: Caller) => number | null | Errno;
  /**
   * Who a request counts against for per-tenant bounds (open files, PSI triggers): a key that
   * nothing inside a container can multiply (backend.ts). Without it, every caller is one tenant.
   */
  tenantOf?: (caller: Caller, container: string | undefined) => string;
  /** Called after every open/read/write with the outcome, for metrics (must be cheap). */
  observe?: (file: ServedPath, result: string, seconds: number) => void;
}
