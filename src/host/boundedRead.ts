// Every kernel file read while serving a request goes through here, so no file can stall the
// thread or grow memory without bound: opened O_NONBLOCK (a planted FIFO does not block), only
// regular files, at most `maxBytes`. Synchronous on purpose: these filesystems never wait on a
// disk, and a sync read is ~10x cheaper than libuv's thread pool. Failures are FileReadErrors.
import fs from 'node:fs';
import { CgroupParseError } from '../cgroup/snapshot';

/** Default cap: the largest kernel file read here (/proc/stat with 8192 CPUs) is ~1/3 of it. */
export const DEFAULT_MAX_BYTES = 1024 * 1024;
/** Cap for one task's files (/proc/<pid>/stat, status, cgroup): a few KiB in practice. */
export const TASK_FILE_MAX_BYTES = 64 * 1024;

// Node does not export O_CLOEXEC; libuv adds it to every open anyway, this makes it explicit.
const O_CLOEXEC = (fs.constants as Record<string, number>).O_CLOEXEC ?? 0o2000000;
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY | O_CLOEXEC;

/** A kernel file that could not be read within the bounds. `code` is the errno name
 *  ("ENOENT", "EAGAIN", ...) or "NOT_REGULAR" / "TOO_LARGE" (no errno:
 *  a reader gets EIO for those). */
export class FileReadError extends CgroupParseError {
  constructor(
    dir: string,
    file: string,
    readonly code: string,
    reason: string,
  ) {
    super(dir, file, reason);
    this.name = 'FileReadError';
  }
}

/** One scratch buffer for every read: reads are synchronous, so it is never shared in flight. */
let scratch = Buffer.allocUnsafe(64 * 1024);

function scratchOf(bytes: number): Buffer {
  if (scratch.length < bytes) scratch = Buffer.allocUnsafe(Math.max(bytes, scratch.length * 2));
  return scratch;
}

/** A larger scratch keeping the first `used` bytes already read into the old one. */
function growScratch(used: number, bytes: number): Buffer {
  const old = scratch;
  scratch = Buffer.allocUnsafe(bytes);
  old.copy(scratch, 0, 0, used);
  return scratch;
}

/** The file's bytes (a copy), at most `maxBytes`; longer -> FileReadError "TOO_LARGE". */
export function readBoundedBuffer(dir: string, file: string, maxBytes = DEFAULT_MAX_BYTES): Buffer {
  const { bytes, truncated } = readPrefix(dir, file, maxBytes);
  if (truncated) throw new FileReadError(dir, file, 'TOO_LARGE', `larger than ${maxBytes} bytes`);
  return Buffer.from(bytes);
}

/** The file's text (UTF-8), at most `maxBytes`; longer -> FileReadError "TOO_LARGE". */
export function readBoundedText(dir: string, file: string, maxBytes = DEFAULT_MAX_BYTES): string {
  const { bytes, truncated } = readPrefix(dir, file, maxBytes);
  if (truncated) throw new FileReadError(dir, file, 'TOO_LARGE', `larger than ${maxBytes} bytes`);
  return bytes.toString('utf8');
}

/** The first `maxBytes` of the file as text, and whether there was more. */
export function readBoundedPrefix(dir: string, file: string, maxBytes = DEFAULT_MAX_BYTES): { text: string; truncated: boolean } {
  const { bytes, truncated } = readPrefix(dir, file, maxBytes);
  return { text: bytes.toString('utf8'), truncated };
}

/** Bytes view into the scratch buffer: valid until the next read. */
function readPrefix(dir: string, file: string, maxBytes: number): { bytes: Buffer; truncated: boolean } {
  const path = file === '' ? dir : `${dir}/${file}`;
  let fd: number;
  try {
    fd = fs.openSync(path, OPEN_FLAGS);
  } catch (err) {
    throw fromErrno(dir, file, err);
  }
  try {
    checkRegular(fd, dir, file);
    // No trust in st_size: kernel files say 0 or 4096 whatever they hold. The read finds out.
    return readUpTo(fd, { dir, file }, maxBytes, false);
  } finally {
    fs.closeSync(fd);
  }
}

/** Opens `dir/file` as readPrefix does (non-blocking, regular files only); the caller closes the fd. */
export function openRegular(dir: string, file: string): number {
  let fd: number;
  try {
    fd = fs.openSync(`${dir}/${file}`, OPEN_FLAGS);
  } catch (err) {
    throw fromErrno(dir, file, err);
  }
  try {
    checkRegular(fd, dir, file);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  return fd;
}

function checkRegular(fd: number, dir: string, file: string): void {
  const stat = fs.fstatSync(fd);
  if (!stat.isFile()) throw new FileReadError(dir, file, 'NOT_REGULAR', `is ${kindOf(stat)}, not a regular file`);
}

/**
 * The whole file again through an fd kept open (pread from offset 0: the kernel's seq_file
 * files regenerate their content at offset 0, as at a fresh open). Bytes as readPrefix.
 * With `shortReadIsEnd` (rereadKernfsPrefix), a read that returns less than asked is the end, without a read that returns
 * 0 to say so. True of a kernfs file (cgroupfs, sysfs): its content is one record, generated
 * whole into the kernel's buffer (grown until it fits) and copied out as far as asked.
 */
export function rereadPrefix(fd: number, dir: string, file: string, maxBytes: number): { bytes: Buffer; truncated: boolean } {
  return readUpTo(fd, { dir, file }, maxBytes, false);
}

/** rereadPrefix of a kernfs file: `shortReadIsEnd` (above). */
export function rereadKernfsPrefix(fd: number, dir: string, file: string, maxBytes: number): { bytes: Buffer; truncated: boolean } {
  return readUpTo(fd, { dir, file }, maxBytes, true);
}

/** Reads from offset 0 whatever the fd's offset (pread), to EOF or past `maxBytes`. */
function readUpTo(fd: number, { dir, file }: { dir: string; file: string }, maxBytes: number, shortReadIsEnd: boolean): { bytes: Buffer; truncated: boolean } {
  // The scratch grows with what files really hold, not with the cap a caller allows.
  let buffer = scratchOf(Math.min(maxBytes + 1, 64 * 1024));
  let total = 0;
  while (true) {
    if (total === buffer.length) buffer = growScratch(total, Math.min(maxBytes + 1, total * 2));
    let n: number;
    const asked = Math.min(buffer.length, maxBytes + 1) - total;
    try {
      n = fs.readSync(fd, buffer, total, asked, total);
    } catch (err) {
      throw fromErrno(dir, file, err);
    }
    if (n === 0) return { bytes: buffer.subarray(0, total), truncated: false };
    total += n;
    if (total > maxBytes) return { bytes: buffer.subarray(0, maxBytes), truncated: true };
    if (shortReadIsEnd && n < asked) return { bytes: buffer.subarray(0, total), truncated: false };
  }
}

function fromErrno(dir: string, file: string, err: unknown): FileReadError {
  const e = err as NodeJS.ErrnoException;
  const code = e.code ?? 'EIO';
  // Node's message repeats the path ("ENOENT: no such file or directory, open '/x'"): cut it.
  const message = e instanceof Error ? e.message : String(err);
  const cut = e.syscall === undefined ? -1 : message.lastIndexOf(`, ${e.syscall} `);
  const reason = code === 'EAGAIN' ? 'would block (EAGAIN)' : cut > 0 ? message.slice(0, cut) : message;
  return new FileReadError(dir, file, code, reason);
}

function kindOf(stat: fs.Stats): string {
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isDirectory()) return 'a directory';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** True when `err` is a FileReadError for one of these errno names. */
export function isReadErrorCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof FileReadError && codes.includes(err.code);
}
