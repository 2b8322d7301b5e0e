import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  parseFlatKeyed,
  parseMaxOrValue,
  parseSingleValue,
  readOptionalFile,
  selfAndAncestors,
  tighter,
  v1LimitOrNull,
} from '../../src/cgroup/parse';
import { CgroupParseError } from '../../src/cgroup/snapshot';

const FIXTURES = path.join(__dirname, '../fixtures/cgroup');

describe('parse helpers', () => {
  it('parses flat-keyed files into bigints without losing precision', () => {
    const values = parseFlatKeyed('total_cache 9223372036854771712\nswap 0\n', '/d', 'memory.stat');
    expect(values.get('total_cache')).toBe(9223372036854771712n);
    expect(values.get('swap')).toBe(0n);
    expect([...values.keys()]).toEqual(['total_cache', 'swap']);
  });

  it('names the directory, the file and the line in a parse error', () => {
    const parse = () => parseFlatKeyed('cache 1\nrss 12 kB\n', '/sys/fs/cgroup/memory/x', 'memory.stat');
    expect(parse).toThrow(CgroupParseError);
    expect(parse).toThrow(/^\/sys\/fs\/cgroup\/memory\/x\/memory\.stat: line 2 /);
    try {
      parse();
    } catch (err) {
      expect((err as CgroupParseError).dir).toBe('/sys/fs/cgroup/memory/x');
      expect((err as CgroupParseError).file).toBe('memory.stat');
    }
  });

  it('reads "max" as no limit and a number as a bigint', () => {
    expect(parseMaxOrValue('max\n', '/d', 'memory.max')).toBeNull();
    expect(parseMaxOrValue('268435456\n', '/d', 'memory.max')).toBe(268435456n);
    expect(() => parseMaxOrValue('lots\n', '/d', 'memory.max')).toThrow(CgroupParseError);
    expect(parseSingleValue('-1\n', '/d', 'cpu.cfs_quota_us')).toBe(-1n);
  });

  it("treats v1's page-rounded LONG_MAX and anything above 2^62 as unlimited", () => {
    expect(v1LimitOrNull(9223372036854771712n)).toBeNull(); // 4 KiB pages
    expect(v1LimitOrNull(9223372036854710272n)).toBeNull(); // 64 KiB pages
    expect(v1LimitOrNull(2n ** 62n)).toBeNull();
    expect(v1LimitOrNull(2n ** 62n - 1n)).toBe(2n ** 62n - 1n);
    expect(v1LimitOrNull(268435456n)).toBe(268435456n);
  });

  it('gives null for a missing file but throws for a missing cgroup directory', () => {
    expect(readOptionalFile(`${FIXTURES}/v1/memory/empty`, 'memory.stat')).toBeNull();
    expect(() => readOptionalFile(`${FIXTURES}/v1/memory/gone`, 'memory.stat')).toThrow(
      /v1\/memory\/gone\/memory\.stat: cgroup directory does not exist/,
    );
  });

  it('lists a directory and its ancestors up to the hierarchy root', () => {
    expect(selfAndAncestors('/r/a/b', '/r')).toEqual(['/r/a/b', '/r/a', '/r']);
    expect(selfAndAncestors('/r', '/r')).toEqual(['/r']);
    expect(selfAndAncestors('/other/x', '/r')).toEqual(['/other/x']);
    expect(selfAndAncestors('/a', '/')).toEqual(['/a', '/']);
  });

  it('picks the tighter of two optional limits', () => {
    expect(tighter(null, null)).toBeNull();
    expect(tighter(5n, null)).toBe(5n);
    expect(tighter(null, 5n)).toBe(5n);
    expect(tighter(7n, 5n)).toBe(5n);
  });
});
