/**
 * Shared helpers for reading cgroup files: one place that turns the kernel's text into bigints
 * and every failure into a CgroupParseError naming the cgroup directory and the file.
 *
 * All reads are synchronous on purpose: cgroupfs and procfs never block on disk, and a sync
 * read is ~10x cheaper than a trip through libuv's thread pool.
 */
import fs from 'node:fs';
import { CgroupParseError } from './snapshot';
import { parseCpuList } from './cpulist';

const SIGNED_DECIMAL = /^-?\d+$/;
const UNSIGNED_DECIMAL = /^\d+$/;

/**
 * cgroup v1 prints "no limit" as PAGE_COUNTER_MAX pages in bytes: PAGE_COUNTER_MAX is
 * LONG_MAX / PAGE_SIZE, so the value is LONG_MAX rounded down to a page (9223372036854771712
 * with 4 KiB pages, a different number with 16/64 KiB pages). No real limit comes near 2^62
 * bytes (4 EiB), so anything at or above it is "unlimited" whatever the page size.
 */
export const V1_UNLIMITED_THRESHOLD = 1n << 62n;

function isErrno(err: unknown, ...codes: string[]): boolean {
  return (
    typeof err === 'object' &&
    err !== null &&
    codes.includes((err as NodeJS.ErrnoException).code ?? '')
  );
}

/** The file's text, or null when it does not exist. A missing directory throws (the cgroup is
 *  gone, so no default would be honest); any other error throws. */
export function readOptionalFile(dir: string, file: string): string | null {
  try {
    return fs.readFileSync(`${dir}/${file}`, 'utf8');
  } catch (err) {
    // ENODEV/EOPNOTSUPP: some cgroup files exist but refuse reads when a feature is off.
    if (isErrno(err, 'ENOENT', 'ENODEV', 'EOPNOTSUPP')) {
      if (!fs.existsSync(dir)) throw new CgroupParseError(dir, file, 'cgroup directory does not exist');
      return null;
    }
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
    throw new CgroupParseError(dir, file, `${what} is not a decimal integer: ${JSON.stringify(token)}`);
  }
  return BigInt(token);
}

/** One unsigned decimal integer as a bigint. */
export function parseUnsigned(token: string, dir: string, file: string, what: string): bigint {
  if (!UNSIGNED_DECIMAL.test(token)) {
    const shown = JSON.stringify(token);
    throw new CgroupParseError(dir, file, `${what} is not an unsigned integer: ${shown}`);
  }
  return BigInt(token);
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
      throw new CgroupParseError(dir, file, `line ${i + 1} is not "key value": ${JSON.stringify(line)}`);
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

/** A v1 byte limit (memory.limit_in_bytes, hierarchical_*_limit): null when unlimited. */
export function v1LimitOrNull(bytes: bigint): bigint | null {
  return bytes >= V1_UNLIMITED_THRESHOLD ? null : bytes;
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

/** The smaller of two optional limits (null = no limit). */
export function tighter(a: bigint | null, b: bigint | null): bigint | null {
  if (a === null) return b;
  if (b === null) return a;
  return a < b ? a : b;
}

/** A CPU list file's text ("0-3,8") as ids; a malformed list is a CgroupParseError. */
export function parseCpuListIn(text: string, dir: string, file: string): number[] {
  try {
    return parseCpuList(text);
  } catch (err) {
    throw new CgroupParseError(dir, file, (err as Error).message);
  }
}
