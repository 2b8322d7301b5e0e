/** Fuzz: the cgroup value parsers (parse.ts, cpulist.ts) on arbitrary and hostile text. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseByteLimit,
  parseCpuListIn,
  parseDecimal,
  parseFlatKeyed,
  parseMaxOrValue,
  parseSingleValue,
  parseUnsigned,
  V1_UNLIMITED_THRESHOLD,
  v1LimitOrNull,
} from '../../src/cgroup/parse';
import { formatCpuList, MAX_CPU_COUNT, parseCpuList } from '../../src/cgroup/cpulist';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { anyText, hostileNumber, keyedLines, parsesOrRejects, PlainError } from './arbitraries';

const D = '/sys/fs/cgroup/memory/x';

describe('fuzz: cgroup number parsers', () => {
  it('parseDecimal / parseUnsigned / parseSingleValue: a bigint of at most 20 digits or CgroupParseError', () => {
    fc.assert(fc.property(fc.oneof(hostileNumber, anyText), (token) => {
      const signed = parsesOrRejects(() => parseDecimal(token, D, 'f', 'v'), CgroupParseError);
      if (signed !== null) expect(signed.toString().replace('-', '').length).toBeLessThanOrEqual(20);
      const unsigned = parsesOrRejects(() => parseUnsigned(token, D, 'f', 'v'), CgroupParseError);
      if (unsigned !== null) expect(unsigned >= 0n).toBe(true);
      parsesOrRejects(() => parseSingleValue(token, D, 'f'), CgroupParseError);
    }), { numRuns: 300 });
  });

  it('limits: "max" and anything at or past 2^62 are unlimited (null), never a number', () => {
    fc.assert(fc.property(fc.oneof(hostileNumber, fc.constant('max\n')), (token) => {
      const v2 = parsesOrRejects(() => parseByteLimit(token, D, 'memory.max'), CgroupParseError);
      if (v2 !== null) expect(v2 >= 0n && v2 < V1_UNLIMITED_THRESHOLD).toBe(true);
      if (token.trim() === 'max') expect(parseMaxOrValue(token, D, 'memory.max')).toBeNull();
    }), { numRuns: 300 });
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 1n << 64n }), (bytes) => {
      const limit = v1LimitOrNull(bytes);
      expect(limit === null ? bytes >= V1_UNLIMITED_THRESHOLD : limit === bytes && bytes < V1_UNLIMITED_THRESHOLD).toBe(true);
    }));
    expect(v1LimitOrNull(-1n)).toBeNull();
    for (const unlimited of [9223372036854771712n, 9223372036854775807n, 18446744073709551615n]) {
      expect(v1LimitOrNull(unlimited)).toBeNull();
    }
  });

  it('parseFlatKeyed: a map of what was given, or CgroupParseError; duplicated keys keep the last', () => {
    const keys = ['anon', 'file', 'total_rss', 'hierarchical_memory_limit', 'usage_usec', ''];
    fc.assert(fc.property(fc.oneof(keyedLines(keys, fc.constantFrom(' ', '  ', '\t', '')), anyText), (text) => {
      const map = parsesOrRejects(() => parseFlatKeyed(text, D, 'memory.stat'), CgroupParseError);
      if (map === null) return;
      for (const [key, value] of map) {
        expect(key).not.toBe('');
        expect(typeof value).toBe('bigint');
      }
    }), { numRuns: 300 });
  });
});

describe('fuzz: CPU lists', () => {
  const list = fc.array(
    fc.oneof(
      hostileNumber,
      fc.tuple(hostileNumber, hostileNumber).map(([a, b]) => `${a}-${b}`),
      fc.tuple(fc.nat(9000), fc.nat(9000)).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
    ),
    { maxLength: 50 },
  ).map((parts) => parts.join(','));

  it('parseCpuList: sorted unique ids below the limit, or a plain Error, in bounded time', () => {
    fc.assert(fc.property(fc.oneof(list, anyText), fc.integer({ min: 1, max: MAX_CPU_COUNT }), (text, limit) => {
      const ids = parsesOrRejects(() => parseCpuList(text, limit), PlainError);
      if (ids === null) return;
      expect(ids.length).toBeLessThanOrEqual(limit);
      ids.forEach((id, i) => {
        expect(Number.isInteger(id) && id >= 0 && id < limit).toBe(true);
        if (i > 0) expect(id).toBeGreaterThan(ids[i - 1]!);
      });
      expect(parseCpuList(formatCpuList(ids), limit)).toEqual(ids);
    }), { numRuns: 400 });
  });

  it('parseCpuListIn wraps every failure in a CgroupParseError naming the file', () => {
    fc.assert(fc.property(fc.oneof(list, anyText), (text) => {
      const cpus = parsesOrRejects(() => parseCpuListIn(text, D, 'cpuset.cpus', 8), CgroupParseError);
      // Accepted: parseCpuList's own answer; rejected: its error, prefixed with the file's path.
      if (cpus !== null) expect(cpus).toEqual(parseCpuList(text, 8));
      else expect(() => parseCpuListIn(text, D, 'cpuset.cpus', 8)).toThrow(`${D}/cpuset.cpus: `);
    }), { numRuns: 200 });
  });

  it('a megabyte of huge or full ranges costs what its length costs, not what its values say', () => {
    const text = new Array(80_000).fill('0-4294967294').join(',');
    parsesOrRejects(() => parseCpuList(text), PlainError);
    // 149,796 ranges covering 8192 CPUs each: linear in the text (~0.2 s here), not 1.2e9 steps.
    const valid = new Array(149_796).fill('0-8191').join(',');
    expect(valid.length).toBeLessThan(1024 * 1024);
    expect(parsesOrRejects(() => parseCpuList(valid), PlainError, 2000)).toHaveLength(8192);
  });
});
