// The page size and USER_HZ, from the auxiliary vector the kernel gave this process at exec: the
// values glibc's sysconf(_SC_PAGESIZE) and sysconf(_SC_CLK_TCK) return (glibc reads them from
// AT_PAGESZ and AT_CLKTCK at start-up). Node has no sysconf; /proc/self/auxv needs no native code.
import os from 'node:os';
import { readBoundedBuffer } from './boundedRead';
import { CgroupParseError } from '../cgroup/snapshot';

export interface SystemUnits {
  /** sysconf(_SC_PAGESIZE): 4096 on x86-64, 4/16/64 KiB on arm64 and ppc64. */
  pageSizeBytes: bigint;
  /** sysconf(_SC_CLK_TCK): the unit of /proc/stat and /proc/<pid>/stat times (100 on Linux). */
  userHz: number;
}

const AT_NULL = 0n;
const AT_PAGESZ = 6n;
const AT_CLKTCK = 17n;
/** glibc's answer when the kernel passes no AT_CLKTCK (kernels before 2.4): USER_HZ. */
const DEFAULT_USER_HZ = 100;
/** An auxv is a few dozen pairs: ~400 bytes. */
const AUXV_MAX_BYTES = 64 * 1024;

/** The auxiliary vector: (type, value) pairs of native words, ended by AT_NULL. */
export function parseAuxv(bytes: Buffer, wordBytes: 4 | 8, littleEndian: boolean): Map<bigint, bigint> {
  const entries = new Map<bigint, bigint>();
  const word = (offset: number): bigint => {
    if (wordBytes === 8) return littleEndian ? bytes.readBigUInt64LE(offset) : bytes.readBigUInt64BE(offset);
    return BigInt(littleEndian ? bytes.readUInt32LE(offset) : bytes.readUInt32BE(offset));
  };
  for (let offset = 0; offset + 2 * wordBytes <= bytes.length; offset += 2 * wordBytes) {
    const type = word(offset);
    if (type === AT_NULL) return entries;
    entries.set(type, word(offset + wordBytes));
  }
  throw new Error('auxv: no AT_NULL entry');
}

/** The units in an auxiliary vector; `source` only names it in errors. */
export function systemUnitsOf(auxv: Map<bigint, bigint>, source: string): SystemUnits {
  const pageSizeBytes = auxv.get(AT_PAGESZ);
  // A page is a power of two from 4 KiB (every Linux port) to 1 MiB (none has more).
  if (pageSizeBytes === undefined || pageSizeBytes < 4096n || pageSizeBytes > 1n << 20n || (pageSizeBytes & (pageSizeBytes - 1n)) !== 0n) {
    throw new CgroupParseError(source, 'auxv', `no usable AT_PAGESZ: ${pageSizeBytes}`);
  }
  const clockTicks = auxv.get(AT_CLKTCK);
  if (clockTicks !== undefined && (clockTicks <= 0n || clockTicks > 1_000_000n)) {
    throw new CgroupParseError(source, 'auxv', `AT_CLKTCK out of range: ${clockTicks}`);
  }
  return { pageSizeBytes, userHz: clockTicks === undefined ? DEFAULT_USER_HZ : Number(clockTicks) };
}

const WORD_BYTES_32 = new Set(['arm', 'ia32', 'mips', 'mipsel', 'ppc']);

/** This process's units, from `procSelfDir`/auxv (this process's own vector, so /proc/self). */
export function readSystemUnits(procSelfDir = '/proc/self'): SystemUnits {
  const bytes = readBoundedBuffer(procSelfDir, 'auxv', AUXV_MAX_BYTES);
  const wordBytes = WORD_BYTES_32.has(os.arch()) ? 4 : 8;
  return systemUnitsOf(parseAuxv(bytes, wordBytes, os.endianness() === 'LE'), procSelfDir);
}
