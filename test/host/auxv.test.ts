/**
 * Page size and USER_HZ from the auxiliary vector (what sysconf returns): this host's against
 * getconf, a 64 KiB-page arm64 host's from a fixture, and the views on such a host.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAuxv, readSystemUnits, systemUnitsOf } from '../../src/host/auxv';
import { parseVmstat } from '../../src/host/vmstat';
import { renderVmstat } from '../../src/views/vmstat';
import { CgroupParseError, type MemorySnapshot } from '../../src/cgroup/snapshot';

const FIXTURE_ARM64_64K = path.join(__dirname, '../fixtures/proc/self-arm64-64k');
const KIB64 = 65536n;
const MIB = 1024n * 1024n;

function auxv(pairs: [number, number][], wordBytes: 4 | 8, littleEndian: boolean): Buffer {
  const buf = Buffer.alloc(pairs.length * 2 * wordBytes + 2 * wordBytes); // + AT_NULL
  pairs.forEach(([type, value], i) => {
    for (const [k, v] of [[0, type], [1, value]]) {
      const offset = (2 * i + k) * wordBytes;
      if (wordBytes === 8 && littleEndian) buf.writeBigUInt64LE(BigInt(v), offset);
      else if (wordBytes === 8) buf.writeBigUInt64BE(BigInt(v), offset);
      else if (littleEndian) buf.writeUInt32LE(v, offset);
      else buf.writeUInt32BE(v, offset);
    }
  });
  return buf;
}

describe('system units', () => {
  it("are this host's sysconf(_SC_PAGESIZE) and sysconf(_SC_CLK_TCK), as getconf prints them", () => {
    const units = readSystemUnits();
    expect(units.pageSizeBytes).toBe(BigInt(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()));
    expect(units.userHz).toBe(Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()));
  });

  it('are 64 KiB and 100 on an arm64 kernel with 64 KiB pages (its /proc/self/auxv)', () => {
    expect(readSystemUnits(FIXTURE_ARM64_64K)).toEqual({ pageSizeBytes: KIB64, userHz: 100 });
  });

  it('read 32-bit and big-endian vectors (armhf, s390x, ppc64)', () => {
    expect(systemUnitsOf(parseAuxv(auxv([[6, 16384], [17, 100]], 4, true), 4, true), 'x')).toEqual({ pageSizeBytes: 16384n, userHz: 100 });
    expect(systemUnitsOf(parseAuxv(auxv([[6, 65536], [17, 100]], 8, false), 8, false), 'x')).toEqual({ pageSizeBytes: KIB64, userHz: 100 });
  });

  it('take USER_HZ as 100 without AT_CLKTCK (glibc does), and refuse a vector without a sane page size', () => {
    expect(systemUnitsOf(parseAuxv(auxv([[6, 4096]], 8, true), 8, true), 'x').userHz).toBe(100);
    expect(() => systemUnitsOf(parseAuxv(auxv([[17, 100]], 8, true), 8, true), 'x')).toThrow(CgroupParseError);
    expect(() => systemUnitsOf(parseAuxv(auxv([[6, 5000]], 8, true), 8, true), 'x')).toThrow(/AT_PAGESZ/);
    expect(() => parseAuxv(Buffer.alloc(8, 1), 8, true)).toThrow(/no AT_NULL/);
  });
});

describe('/proc/vmstat on a 64 KiB-page host', () => {
  const host = parseVmstat(readFileSync(path.join(__dirname, '../fixtures/proc/vmstat'), 'utf8'));
  const memory: MemorySnapshot = {
    limitBytes: 512n * MIB, usageBytes: 300n * MIB, swapLimitBytes: null, swapUsageBytes: 0n, swapAccounted: true,
    stat: {
      anonBytes: 100n * MIB, fileBytes: 200n * MIB, shmemBytes: 4n * MIB, fileMappedBytes: 50n * MIB, fileDirtyBytes: 128n * 1024n,
      fileWritebackBytes: 0n, swapCachedBytes: 0n, activeAnonBytes: 10n * MIB, inactiveAnonBytes: 90n * MIB, activeFileBytes: 150n * MIB,
      inactiveFileBytes: 50n * MIB, unevictableBytes: 0n, slabReclaimableBytes: 3n * MIB, slabUnreclaimableBytes: 2n * MIB,
      kernelStackBytes: 1n * MIB, pageTablesBytes: 2n * MIB, anonHugeBytes: 1024n * MIB, events: new Map(),
    },
  };

  it('counts pages of the page size the system reports: 16x fewer than with 4 KiB', () => {
    const { pageSizeBytes } = readSystemUnits(FIXTURE_ARM64_64K);
    const vmstat = parseVmstat(renderVmstat({ host, memory, pageSizeBytes, hostMemTotalKb: 24683656n, blockIo: { readBytes: 4n * MIB, writeBytes: 50n * MIB } }));
    expect(vmstat.get('nr_anon_pages')).toBe(1600n); // 100 MiB / 64 KiB
    expect(vmstat.get('nr_file_pages')).toBe(3200n);
    expect(vmstat.get('nr_dirty')).toBe(2n);
    expect(vmstat.get('nr_free_pages')).toBe((212n * MIB) / KIB64);
    // A PMD huge page with 64 KiB pages is 512 MiB (8192 entries of 8 bytes in a 64 KiB table).
    expect(vmstat.get('nr_anon_transparent_hugepages')).toBe(2n);
    expect(vmstat.get('nr_kernel_stack')).toBe(1024n); // kB whatever the page size
    // pgpgin/pgpgout are KiB whatever the page size.
    expect(vmstat.get('pgpgin')).toBe(4096n);
    expect(vmstat.get('pgpgout')).toBe(51200n);
  });
});
