/**
 * The typed face of native/ (the N-API addon over libfuse3's low-level API). Nothing else in
 * src/ imports the addon: everything FUSE goes through src/fuse/.
 */
import path from 'node:path';

/**
 * The operations the TypeScript side handles, by the names the addon exports their codes under
 * (`ops`): the codes are defined in native/src/addon.c only. loadNative checks every one is there.
 *   release: a notification (id -1): native has already answered the kernel; JS forgets the handle.
 *   access: `flags` is the mask (R_OK 4, W_OK 2, X_OK 1; F_OK 0).
 *   poll: `flags` is the events asked; answered with replyPoll (or replyErr).
 */
export const FUSE_OP_NAMES = [
  'lookup', 'getattr', 'setattr', 'access', 'open', 'read', 'write', 'release', 'opendir', 'readdir', 'poll',
] as const;
export type FuseOpName = (typeof FUSE_OP_NAMES)[number];
/** Operation name -> the code the addon puts in a request's `op`. */
export type FuseOps = Readonly<Record<FuseOpName, number>>;

/** The request fields TypeScript reads, by the names the addon exports their header index under. */
export const REQUEST_FIELD_NAMES = ['id', 'op', 'ino', 'pid', 'uid', 'gid', 'fh', 'offset', 'size', 'flags'] as const;
export type RequestFieldName = (typeof REQUEST_FIELD_NAMES)[number];
/** Field name -> its index in the request header (a Float64Array). */
export type RequestFields = Readonly<Record<RequestFieldName, number>>;

/**
 * One request, as the handler sees it during its synchronous run. There is one FuseRequest per
 * mount, reused: the addon writes each request's numbers into `header` (on the main thread, just
 * before the call) because an object per request is measurable garbage at 10k+ requests/s.
 * Whatever a handler keeps past its return must be copied out (e.g. the caller at OPEN).
 */
export class FuseRequest {
  readonly header: Float64Array;
  /** LOOKUP: the name looked up. */
  name: string | undefined = undefined;
  /** WRITE: the bytes written (a Buffer of this request's own). */
  data: Buffer | undefined = undefined;

  private readonly fields: RequestFields;

  constructor(fields: RequestFields) {
    this.fields = { ...fields }; // a plain copy: the addon's frozen object may be slower to read
    this.header = new Float64Array(Math.max(...Object.values(fields)) + 1);
  }

  /** Answers the request through one of the reply functions, exactly once; -1: a notification. */
  get id(): number { return this.header[this.fields.id]; }
  /** One of the addon's `ops` codes. */
  get op(): number { return this.header[this.fields.op]; }
  get ino(): number { return this.header[this.fields.ino]; }
  /** The caller's thread id (0: not visible in our pid namespace). */
  get pid(): number { return this.header[this.fields.pid]; }
  get uid(): number { return this.header[this.fields.uid]; }
  get gid(): number { return this.header[this.fields.gid]; }
  get fh(): number { return this.header[this.fields.fh]; }
  get offset(): number { return this.header[this.fields.offset]; }
  get size(): number { return this.header[this.fields.size]; }
  /** OPEN/OPENDIR: the open flags; ACCESS: the mask; SETATTR: the to_set bits. */
  get flags(): number { return this.header[this.fields.flags]; }
}

/**
 * Called once per request on the main thread, after the addon wrote the request's numbers into
 * the header given to mount; `name` and `data` are passed as they are per-request values anyway.
 */
export type RawRequestHandler = (name: string | undefined, data: Buffer | undefined) => void;

export interface NativeSession {
  readonly __brand: 'NativeSession';
}

export type LoopMode = 'poll' | 'thread';

export interface NativeAddon {
  /** Operation codes (see FUSE_OP_NAMES). */
  readonly ops: FuseOps;
  /** Where each request field sits in the request header (see FuseRequest). */
  readonly requestFields: RequestFields;
  /**
   * `header`: a FuseRequest's header, filled before each call of `handler`. `pageCache`: OPEN is
   * answered ENOSYS (the kernel then sends no OPEN, READ or RELEASE per open file and keeps an
   * inode's pages across opens), READs are answered from the inode's content (setInodeContent),
   * and the kernel drops an inode's pages when GETATTR shows a new mtime or size.
   */
  mount: (
    mountpoint: string, options: string, loop: LoopMode, header: Float64Array, handler: RawRequestHandler,
    pageCache?: boolean,
  ) => NativeSession;
  unmount: (session: NativeSession) => void;
  replyErr: (id: number, errno: number) => void;
  replyEntry: (
    id: number, ino: number, mode: number, nlink: number, size: number, uid: number, gid: number,
    mtimeSec: number, entryTimeoutSec: number, attrTimeoutSec: number, mtimeNsec?: number,
  ) => void;
  replyAttr: (
    id: number, ino: number, mode: number, nlink: number, size: number, uid: number, gid: number,
    mtimeSec: number, attrTimeoutSec: number, mtimeNsec?: number,
  ) => void;
  /**
   * Answers an open. With `content`, the native side keeps a copy and answers this handle's READs
   * from it itself. `freshOnRewind` is the rule for a READ from offset 0 after the handle was
   * read: true sends it to JS (which renders afresh and gives native the result with setContent),
   * false lets native serve it from its copy. A READ that needs bytes after native delivered them
   * all and freed its copy comes to JS either way (mechanics: native no longer has them).
   * The copy is dropped at RELEASE.
   * With `storeFirst`, native's notifier thread first puts `content` into the opened inode's page
   * cache (which sets its size, so splice/sendfile/mmap readers get the bytes), then answers.
   */
  replyOpen: (
    id: number, fh: number, directIo: boolean, keepCache: boolean, nonSeekable: boolean,
    content?: Buffer, storeFirst?: boolean, freshOnRewind?: boolean,
  ) => void;
  /**
   * Replaces the content native serves for the open handle `fh` (after JS answered a READ from a
   * re-render; that READ counts as the handle's first). A handle native holds no content for stays
   * without.
   */
  setContent: (session: NativeSession, fh: number, content: Buffer) => void;
  /**
   * Page-cache sessions: the next content of `ino`. READs get it once a replyAttr or replyEntry
   * for `ino` carries a changed mtime or size (before that, the kernel's pages and size are of
   * the version before, and READs must match them); the first content of an inode at once.
   */
  setInodeContent: (session: NativeSession, ino: number, content: Buffer) => void;
  dropInodeContent: (session: NativeSession, ino: number) => void;
  /**
   * The kernel forgets the inode's attributes (not its pages): its next read asks GETATTR.
   * Waits on no page, so it is safe on the thread serving requests. 0 or an errno (ENOENT: not
   * cached by the kernel).
   */
  invalidateAttributes: (session: NativeSession, ino: number) => number;
  replyBuf: (id: number, data: Buffer) => void;
  replyWrite: (id: number, count: number) => void;
  replyDir: (id: number, names: string[], inos: number[], modes: number[], offset: number, size: number) => void;
  /**
   * Answers a POLL with `revents`. Its poll handle (the kernel's request to be told of a change)
   * is kept by the file handle's watch (watchPoll) if it has one, to be notified at the watched
   * fd's next event; else dropped.
   */
  replyPoll: (id: number, revents: number) => void;
  /**
   * Watches the kernel fd `fd` (POLLPRI) for the open handle `fh`: 0, or an errno (then `fd` is
   * still the caller's). From 0 on the fd is native's: unwatchPoll (or unmount) closes it.
   */
  watchPoll: (session: NativeSession, fh: number, fd: number) => number;
  unwatchPoll: (session: NativeSession, fh: number) => boolean;
  /**
   * The poll bits the watched fd of `fh` adds: POLLPRI if it fired since the last call (the event
   * is consumed), POLLPRI|POLLERR on every call once it answered POLLERR (its cgroup was removed), else 0.
   */
  takePollEvent: (session: NativeSession, fh: number) => number;
  /** Whether the watched fd of `fh` answered POLLERR (its cgroup was removed). */
  pollWatchGone: (session: NativeSession, fh: number) => boolean;
  pending: () => number;
  /**
   * The watchdog's last resort (native/src/deadman.c), a thread that needs nothing from the main
   * thread: once it has not been beaten for `silenceLimitMs`, it aborts these fusectl connections
   * (device minors) and SIGKILLs the process. 0, or the errno of starting its thread.
   */
  watchdogArm: (silenceLimitMs: number, connectionMinors: number[]) => number;
  /** The main thread is running (the silence limit starts again). */
  watchdogBeat: () => void;
  /** The process is ending: no more beats are waited for; if it still runs `ms` from now, abort and SIGKILL. */
  watchdogKillAfter: (ms: number, why: string) => void;
  libfuseVersion: () => number;
  setnsCgroup: (nsPath: string) => void;
}

/** Where `npm install` (node-gyp) puts the build; the same path in the image. */
export function nativeBuildDir(): string {
  // ISOLFS_NATIVE_DIR: the sanitizer lane of scripts/test.sh points the daemon at the ASan build.
  const override = process.env.ISOLFS_NATIVE_DIR;
  if (override !== undefined && override !== '') return path.resolve(override);
  return path.resolve(__dirname, '..', '..', 'native', 'build', 'Release');
}

export class NativeLoadError extends Error {}

/**
 * The addon, if it exports every operation code and request field TypeScript uses (a build older
 * than the TypeScript would otherwise misroute requests); else a NativeLoadError naming them.
 */
export function checkAddon(addon: unknown, file: string): NativeAddon {
  const exported = addon as Partial<NativeAddon> | null;
  const missing = (table: object | undefined, names: readonly string[], label: string): string[] =>
    names.filter((n) => !Number.isInteger((table as Record<string, unknown> | undefined)?.[n])).map((n) => `${label}.${n}`);
  const absent = [
    ...missing(exported?.ops, FUSE_OP_NAMES, 'ops'),
    ...missing(exported?.requestFields, REQUEST_FIELD_NAMES, 'requestFields'),
  ];
  if (absent.length > 0) {
    throw new NativeLoadError(`the native addon ${file} does not export ${absent.join(', ')}; rebuild it (npm install)`);
  }
  return addon as NativeAddon;
}

/** Loads the addon, turning the loader's errors into one line an operator can act on. */
export function loadNative(): NativeAddon {
  const file = path.join(nativeBuildDir(), 'isolfs_native.node');
  let addon: unknown;
  try {
    // biome-ignore lint/style/noCommonJs: a native addon can only be loaded with require.
    addon = require(file);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/libfuse3\.so/.test(message)) {
      throw new NativeLoadError('libfuse3 is not installed (apt-get install libfuse3-3 fuse3)', { cause: err });
    }
    if (/Cannot find module|ENOENT/.test(message)) {
      throw new NativeLoadError(`the native addon is not built (${file}); run npm install`, { cause: err });
    }
    throw new NativeLoadError(`cannot load the native addon ${file}: ${message}`, { cause: err });
  }
  return checkAddon(addon, file);
}
