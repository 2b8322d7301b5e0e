import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  forEachLine,
  keyAndValue,
  leastUpTree,
  parseFlatKeyed,
  parseMaxOrValue,
  parseSingleValue,
  readOptionalFile,
  selfAndAncestors,
  v1LimitOrNull,
} from '../../src/cgroup/parse';
import { CgroupParseError } from '../../src/cgroup/snapshot';

const FIXTURES = path.join(__dirname, '../fixtures/cgroup');

/** `parse` throws a CgroupParseError whose fields name `dir` and `file`. */
function expectNamesFile(parse: () => unknown, dir: string, file: string): void {
  let thrown: unknown;
  try {
    parse();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(CgroupParseError);
  expect((thrown as CgroupParseError).dir).toBe(dir);
  expect((thrown as CgroupParseError).file).toBe(file);
}

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
    expectNamesFile(parse, '/sys/fs/cgroup/memory/x', 'memory.stat');
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

});

describe('forEachLine', () => {
  it('gives each non-empty line with its 1-based number, empty lines counted', () => {
    const seen: [string, number][] = [];
    forEachLine('a 1\n\nb 2\n', '/proc', 'vmstat', (line) => seen.push([line.text, line.number]));
    expect(seen).toEqual([['a 1', 1], ['b 2', 3]]);
    forEachLine('', '/proc', 'vmstat', () => {
      throw new Error('no lines expected');
    });
  });

  it("names the directory, the file and the line in its errors, and cuts a huge line", () => {
    const rejectSecond = (text: string) =>
      forEachLine(text, '/proc', 'meminfo', (line) => {
        if (line.number === 2) throw line.notA('"Key: value"');
      });
    expect(() => rejectSecond('MemTotal: 1 kB\nnonsense\n')).toThrow(CgroupParseError);
    expect(() => rejectSecond('MemTotal: 1 kB\nnonsense\n')).toThrow(
      /^\/proc\/meminfo: line 2 is not "Key: value": "nonsense"$/,
    );
    expect(() => rejectSecond(`x\n${'9'.repeat(100_000)}\n`)).toThrow(/: "9{80}\.\.\."$/);
    const duplicate = () =>
      forEachLine('a 1\na 2\n', '/d', 'memory.stat', (line) => {
        if (line.number === 2) throw line.fail('duplicate key a');
      });
    expect(duplicate).toThrow(/^\/d\/memory\.stat: line 2: duplicate key a$/);
    expectNamesFile(duplicate, '/d', 'memory.stat');
  });

  it('lets other errors a line parser throws through unchanged', () => {
    const thrown = new RangeError('mine');
    expect(() =>
      forEachLine('x\n', '/d', 'f', () => {
        throw thrown;
      }),
    ).toThrow(thrown);
  });

  it('splits "key value" at its one space, and nothing else', () => {
    expect(keyAndValue('pgfault 12')).toEqual(['pgfault', '12']);
    expect(keyAndValue('pgfault 12 ')).toBeNull();
    expect(keyAndValue('pgfault  12')).toBeNull();
    expect(keyAndValue(' 12')).toBeNull();
    expect(keyAndValue('pgfault')).toBeNull();
    expect(keyAndValue('pgfault ')).toEqual(['pgfault', '']);
  });
});

describe('leastUpTree', () => {
  it('takes the least value over a directory and its ancestors, skipping levels without one', () => {
    const values = new Map<string, number | null>([['/r/a/b', null], ['/r/a', 1.5], ['/r', 4]]);
    expect(leastUpTree('/r/a/b', '/r', (level) => values.get(level) ?? null)).toBe(1.5);
    expect(leastUpTree('/r/a/b', '/r', () => null)).toBeNull();
  });
});
