/**
 * Shared helpers for reading cgroup files: one place that turns the kernel's text into bigints
 * and every failure into a CgroupParseError naming the cgroup directory and the file.
 *
 * Every read goes through host/boundedRead (non-blocking, regular files only, size-capped).
 */
import fs from 'node:fs';
import { CgroupParseError } from './snapshot';
import { parseCpuList } from './cpulist';
import { DEFAULT_MAX_BYTES, FileReadError, isReadErrorCode, readBoundedText } from '../host/boundedRead';

// At most 20 digits: the kernel prints 64-bit values; a longer token is garbage, and BigInt of
// a megabyte of digits would cost seconds.
const SIGNED_DECIMAL = /^-?\d{1,20}$/;
const UNSIGNED_DECIMAL = /^\d{1,20}$/;

/**
 * cgroup v1 prints "no limit" as PAGE_COUNTER_MAX pages in bytes: PAGE_COUNTER_MAX is
 * LONG_MAX / PAGE_SIZE, so the value is LONG_MAX rounded down to a page (9223372036854771712
 * with 4 KiB pages, a different number with 16/64 KiB pages). No real limit comes near 2^62
 * bytes (4 EiB), so anything at or above it is "unlimited" whatever the page size.
 */
export const V1_UNLIMITED_THRESHOLD = 1n << 62n;

/** The file's text, or null when it does not exist. A missing directory throws (the cgroup is
 *  gone, so no default would be honest); any other error (a FIFO, a directory, a file over
 *  `maxBytes`) throws a FileReadError. */
export function readOptionalFile(dir: string, file: string, maxBytes = DEFAULT_MAX_BYTES): string | null {
  try {
    return readBoundedText(dir, file, maxBytes);
  } catch (err) {
    // ENODEV/EOPNOTSUPP: some cgroup files exist but refuse reads when a feature is off.
    if (isReadErrorCode(err, 'ENOENT', 'ENODEV', 'EOPNOTSUPP')) {
      if (!fs.existsSync(dir)) throw new CgroupParseError(dir, file, 'cgroup directory does not exist');
      return null;
    }
    if (err instanceof FileReadError) throw err;
    throw new CgroupParseError(dir, file, errorText(err));
  }
}

/** The file's text; a missing file is an error. */
export function readRequiredFile(dir: string, file: string): string {
  const text = readOptionalFile(dir, file);
  if (text === null) throw new CgroupParseError(dir, file, 'file does not exist');
  return text;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** One decimal integer (optionally negative) as a bigint, never through Number. */
export function parseDecimal(token: string, dir: string, file: string, what: string): bigint {
  if (!SIGNED_DECIMAL.test(token)) {
    throw new CgroupParseError(dir, file, `${what} is not a decimal integer: ${shown(token)}`);
  }
  return BigInt(token);
}

/** One unsigned decimal integer as a bigint. */
export function parseUnsigned(token: string, dir: string, file: string, what: string): bigint {
  if (!UNSIGNED_DECIMAL.test(token)) {
    throw new CgroupParseError(dir, file, `${what} is not an unsigned integer: ${shown(token)}`);
  }
  return BigInt(token);
}

/** A token quoted for an error message, cut so that a huge line cannot make a huge log line. */
export function shown(token: string): string {
  return JSON.stringify(token.length > 80 ? `${token.slice(0, 80)}...` : token);
}

/**
 * A flat-keyed file ("key value" per line: memory.stat, cpu.stat) as a Map, in file order.
 * Values may be negative (some kernels print per-CPU-summed statistics with %ld).
 */
export function parseFlatKeyed(text: string, dir: string, file: string): Map<string, bigint> {
  const values = new Map<string, bigint>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '') {
      throw new CgroupParseError(dir, file, `line ${i + 1} is not "key value": ${shown(line)}`);
    }
    values.set(parts[0]!, parseDecimal(parts[1]!, dir, file, `line ${i + 1} (${parts[0]})`));
  }
  return values;
}

/** A single-value file ("123\n") as a bigint. */
export function parseSingleValue(text: string, dir: string, file: string): bigint {
  return parseDecimal(text.trim(), dir, file, 'value');
}

/** A v2 single-value limit ("max" or a number, e.g. memory.max) : null for "max". */
export function parseMaxOrValue(text: string, dir: string, file: string): bigint | null {
  const token = text.trim();
  return token === 'max' ? null : parseUnsigned(token, dir, file, 'limit');
}

/** A v2 byte limit: null for "max", and for a number no machine has (as v1LimitOrNull). */
export function parseByteLimit(text: string, dir: string, file: string): bigint | null {
  const limit = parseMaxOrValue(text, dir, file);
  return limit === null ? null : v1LimitOrNull(limit);
}

/** A v1 byte limit (memory.limit_in_bytes, hierarchical_*_limit): null when unlimited. The
 *  kernel never prints a negative limit; -1 is how one writes "unlimited", so read it so. */
export function v1LimitOrNull(bytes: bigint): bigint | null {
  return bytes >= V1_UNLIMITED_THRESHOLD || bytes < 0n ? null : bytes;
}

/** Read a flat-keyed file, or null when it does not exist. */
export function readFlatKeyed(dir: string, file: string): Map<string, bigint> | null {
  const text = readOptionalFile(dir, file);
  return text === null ? null : parseFlatKeyed(text, dir, file);
}

/** Read a single-value file, or null when it does not exist. */
export function readSingleValue(dir: string, file: string): bigint | null {
  const text = readOptionalFile(dir, file);
  return text === null ? null : parseSingleValue(text, dir, file);
}

/**
 * `dir` and its ancestors up to and including `root`, nearest first. Both are absolute paths
 * of the same hierarchy; a `dir` outside `root` yields just `dir`.
 */
export function selfAndAncestors(dir: string, root: string): string[] {
  const trimmedRoot = root.length > 1 ? root.replace(/\/+$/, '') : root;
  const dirs = [dir];
  const prefix = trimmedRoot === '/' ? '/' : `${trimmedRoot}/`;
  if (!dir.startsWith(prefix) || dir === trimmedRoot) return dirs;
  let current = dir;
  while (current.length > trimmedRoot.length) {
    current = current.slice(0, current.lastIndexOf('/')) || '/';
    dirs.push(current);
  }
  return dirs;
}

/** A counter the kernel prints unsigned, so a negative value is garbage: 0. */
export function nonNegative(value: bigint): bigint {
  return value > 0n ? value : 0n;
}

/** The smaller of two optional limits (null = no limit). */
export function tighter(a: bigint | null, b: bigint | null): bigint | null {
  if (a === null) return b;
  if (b === null) return a;
  return a < b ? a : b;
}

/** A CPU list file's text ("0-3,8") as ids below `cpuCountLimit`; a malformed list or an id
 *  out of range is a CgroupParseError. */
export function parseCpuListIn(text: string, dir: string, file: string, cpuCountLimit?: number): number[] {
  try {
    return parseCpuList(text, cpuCountLimit);
  } catch (err) {
    throw new CgroupParseError(dir, file, (err as Error).message);
  }
}
