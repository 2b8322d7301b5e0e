// Kernel text (cgroup and /proc files) into bigints, every failure a CgroupParseError naming the
// directory and the file. Reads go through host/boundedRead (non-blocking, size-capped).
import fs from 'node:fs';
import { CgroupParseError } from './snapshot';
import { parseCpuList } from './cpulist';
import { DEFAULT_MAX_BYTES, FileReadError, isReadErrorCode } from '../host/boundedRead';
import { heldCgroupFiles } from '../host/heldFiles';

// At most 20 digits: the kernel prints 64-bit values; a longer token is garbage, and BigInt of
// a megabyte of digits would cost seconds.
const SIGNED_DECIMAL = /^-?\d{1,20}$/;
const UNSIGNED_DECIMAL = /^\d{1,20}$/;

/** v1 prints "no limit" as LONG_MAX rounded down to a page, which depends on the page size; no
 *  real limit comes near 2^62 bytes (4 EiB), so anything at or above it is "unlimited". */
export const V1_UNLIMITED_THRESHOLD = 1n << 62n;

/** The file's text, or null when it does not exist. A missing directory throws (the cgroup is
 *  gone, so no default would be honest); any other error (a FIFO, a directory, a file over
 *  `maxBytes`) throws a FileReadError. */
export function readOptionalFile(dir: string, file: string, maxBytes = DEFAULT_MAX_BYTES): string | null {
  try {
    return heldCgroupFiles.readText(dir, file, maxBytes);
  } catch (err) {
    // ENODEV/EOPNOTSUPP: some cgroup files exist but refuse reads when a feature is off.
    if (isReadErrorCode(err, 'ENOENT', 'ENODEV', 'EOPNOTSUPP')) {
      // biome-ignore lint/style/useErrorCause: the cause is passed; Biome looks for it in the 2nd argument only, CgroupParseError takes it 4th
      if (!fs.existsSync(dir)) throw new CgroupParseError(dir, file, 'cgroup directory does not exist', { cause: err });
      return null;
    }
    if (err instanceof FileReadError) throw err;
    // biome-ignore lint/style/useErrorCause: the cause is passed; Biome looks for it in the 2nd argument only, CgroupParseError takes it 4th
    throw new CgroupParseError(dir, file, errorText(err), { cause: err });
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

/** One non-empty line of a kernel file, given to a line parser; its errors name file and line. */
export class FileLine {
  constructor(
    readonly text: string,
    /** 1-based, empty lines counted. */
    readonly number: number,
    readonly dir: string,
    readonly file: string,
  ) {}

  /** `line N is not <shape>: "<the line>"` */
  notA(shape: string): CgroupParseError {
    return new CgroupParseError(this.dir, this.file, `line ${this.number} is not ${shape}: ${shown(this.text)}`);
  }

  /** `line N: <reason>` */
  fail(reason: string): CgroupParseError {
    return new CgroupParseError(this.dir, this.file, `line ${this.number}: ${reason}`);
  }
}

/** Calls `parseLine` on each non-empty line of `text`, in order (the loop every line-based
 *  kernel file parser shares). */
export function forEachLine(text: string, dir: string, file: string, parseLine: (line: FileLine) => void): void {
  let number = 0;
  for (const line of text.split('\n')) {
    number++;
    if (line !== '') parseLine(new FileLine(line, number, dir, file));
  }
}

/** A "key value" line split at its one space; null when it is not that shape. */
export function keyAndValue(line: string): [key: string, value: string] | null {
  const space = line.indexOf(' ');
  if (space <= 0 || line.indexOf(' ', space + 1) >= 0) return null;
  return [line.slice(0, space), line.slice(space + 1)];
}

/** A flat-keyed file ("key value" per line: memory.stat, cpu.stat) as a Map, in file order; a
 *  repeated key keeps its last value. Values may be negative (some kernels print sums with %ld). */
export function parseFlatKeyed(text: string, dir: string, file: string): Map<string, bigint> {
  // Plain loop: memory.stat (~70 lines) is parsed at every meminfo render; an error's label is
  // built only when there is an error.
  const values = new Map<string, bigint>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') continue;
    const pair = keyAndValue(line);
    if (pair === null) throw new FileLine(line, i + 1, dir, file).notA('"key value"');
    const [key, token] = pair;
    values.set(key, SIGNED_DECIMAL.test(token) ? BigInt(token) : parseDecimal(token, dir, file, `line ${i + 1} (${key})`));
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

/**
 * The last parse of each flat-keyed file, by path: a text equal to the last one read is not
 * parsed again (memory.stat, ~70 bigints, is read at every meminfo render, and a container
 * that did nothing since has the same one). Bounded: cleared when full.
 */
const lastFlatKeyed = new Map<string, { text: string; values: ReadonlyMap<string, bigint> }>();
const LAST_FLAT_KEYED_ENTRIES = 4096;

/** Read a flat-keyed file, or null when it does not exist. The map is shared: never changed. */
export function readFlatKeyed(dir: string, file: string): ReadonlyMap<string, bigint> | null {
  const text = readOptionalFile(dir, file);
  if (text === null) return null;
  const path = `${dir}/${file}`;
  const last = lastFlatKeyed.get(path);
  if (last !== undefined && last.text === text) return last.values;
  const values = parseFlatKeyed(text, dir, file);
  if (last === undefined && lastFlatKeyed.size >= LAST_FLAT_KEYED_ENTRIES) lastFlatKeyed.clear();
  lastFlatKeyed.set(path, { text, values });
  return values;
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

/** The least `valueAt(level)` over `dir` and its ancestors up to `root` (a limit every ancestor
 *  imposes too); null when no level has one. */
export function leastUpTree(dir: string, root: string, valueAt: (level: string) => number | null): number | null {
  let least: number | null = null;
  for (const level of selfAndAncestors(dir, root)) {
    const value = valueAt(level);
    if (value !== null && (least === null || value < least)) least = value;
  }
  return least;
}

/** A CPU list file's text ("0-3,8") as ids below `cpuCountLimit`; a malformed list or an id
 *  out of range is a CgroupParseError. */
export function parseCpuListIn(text: string, dir: string, file: string, cpuCountLimit?: number): number[] {
  try {
    return parseCpuList(text, cpuCountLimit);
  } catch (err) {
    // biome-ignore lint/style/useErrorCause: the cause is passed; Biome looks for it in the 2nd argument only, CgroupParseError takes it 4th
    throw new CgroupParseError(dir, file, (err as Error).message, { cause: err });
  }
}

/** The CPUs of the first of `places` ([dir, file]) whose file exists; null when none exists or
 *  it lists no CPU (the kernel never runs tasks on an empty cpuset: no information). */
export function readFirstCpuset(places: [dir: string, file: string][], cpuCountLimit?: number): number[] | null {
  for (const [dir, file] of places) {
    const text = readOptionalFile(dir, file);
    if (text === null) continue;
    const cpus = parseCpuListIn(text, dir, file, cpuCountLimit);
    return cpus.length === 0 ? null : cpus;
  }
  return null;
}

/** The kernel's dev_t: 12 bits of major, 20 of minor (MAJORBITS/MINORBITS). */
const MAX_MAJOR = (1 << 12) - 1;
const MAX_MINOR = (1 << 20) - 1;

/** A "MAJ:MIN" device token (blkio, io.stat); null when the token is not that shape or out of
 *  the kernel's range. */
export function parseDeviceNumber(token: string): { major: number; minor: number } | null {
  const match = /^(\d{1,7}):(\d{1,7})$/.exec(token);
  if (match === null) return null;
  const major = Number(match[1]);
  const minor = Number(match[2]);
  return major <= MAX_MAJOR && minor <= MAX_MINOR ? { major, minor } : null;
}
