/**
 * The typed face of native/ (the N-API addon over libfuse3's low-level API). Nothing else in
 * src/ imports the addon: everything FUSE goes through src/fuse/.
 */
import path from 'node:path';

/** Operation codes, as native/src/addon.c numbers them. */
export const enum FuseOp {
  Lookup = 1,
  Getattr = 2,
  Open = 3,
  Read = 4,
  Write = 5,
  /** A notification (id -1): native has already answered the kernel; JS forgets the handle. */
  Release = 6,
  Readdir = 7,
  Setattr = 8,
  Opendir = 9,
  /** access(2): `flags` is the mask (R_OK 4, W_OK 2, X_OK 1; F_OK 0). */
  Access = 10,
}

/**
 * Called once per request on the main thread. Positional arguments, not an object, because this
 * runs for every request and an object per call is measurable garbage at 10k+ requests/s.
 * `id` answers the request through one of the reply functions, exactly once.
 */
export type RawRequestHandler = (
  id: number,
  op: FuseOp,
  ino: number,
  pid: number,
  uid: number,
  gid: number,
  name: string | undefined,
  fh: number,
  offset: number,
  size: number,
  data: Buffer | undefined,
  flags: number,
) => void;

export interface NativeSession {
  readonly __brand: 'NativeSession';
}

export type LoopMode = 'poll' | 'thread';

export interface NativeAddon {
  mount(mountpoint: string, options: string, loop: LoopMode, handler: RawRequestHandler): NativeSession;
  unmount(session: NativeSession): void;
  replyErr(id: number, errno: number): void;
  replyEntry(
    id: number, ino: number, mode: number, nlink: number, size: number, uid: number, gid: number,
    mtimeSec: number, entryTimeoutSec: number, attrTimeoutSec: number,
  ): void;
  replyAttr(
    id: number, ino: number, mode: number, nlink: number, size: number, uid: number, gid: number,
    mtimeSec: number, attrTimeoutSec: number,
  ): void;
  /**
   * Answers an open. With `content`, the native side keeps a copy and answers this handle's
   * READs from it itself, except a READ from offset 0 after the handle was read (or one that
   * needs bytes after the whole content was delivered and the copy freed), which comes to JS
   * (for fresh content, given back with setContent). The copy is dropped at RELEASE.
   * With `storeFirst`, native's notifier thread first puts `content` into the opened inode's page
   * cache (which sets its size, so splice/sendfile/mmap readers get the bytes), then answers.
   */
  replyOpen(
    id: number, fh: number, directIo: boolean, keepCache: boolean, nonSeekable: boolean,
    content?: Buffer, storeFirst?: boolean,
  ): void;
  /** Replaces the content native serves for the open handle `fh` (after a re-render). */
  setContent(session: NativeSession, fh: number, content: Buffer): void;
  replyBuf(id: number, data: Buffer): void;
  replyWrite(id: number, count: number): void;
  replyDir(id: number, names: string[], inos: number[], modes: number[], offset: number, size: number): void;
  pending(): number;
  libfuseVersion(): number;
  setnsCgroup(nsPath: string): void;
}

/** Where `npm install` (node-gyp) puts the build; the same path in the image. */
export function nativeBuildDir(): string {
  // ISOLFS_NATIVE_DIR: the sanitizer lane of scripts/test.sh points the daemon at the ASan build.
  const override = process.env.ISOLFS_NATIVE_DIR;
  if (override !== undefined && override !== '') return path.resolve(override);
  return path.resolve(__dirname, '..', '..', 'native', 'build', 'Release');
}

export class NativeLoadError extends Error {}

/** Loads the addon, turning the loader's errors into one line an operator can act on. */
export function loadNative(): NativeAddon {
  const file = path.join(nativeBuildDir(), 'isolfs_native.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as NativeAddon;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/libfuse3\.so/.test(message)) {
      throw new NativeLoadError('libfuse3 is not installed (apt-get install libfuse3-3 fuse3)');
    }
    if (/Cannot find module|ENOENT/.test(message)) {
      throw new NativeLoadError(`the native addon is not built (${file}); run npm install`);
    }
    throw new NativeLoadError(`cannot load the native addon ${file}: ${message}`);
  }
}
