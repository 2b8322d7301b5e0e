/**
 * Ancestors' limit files are shared by every container below them for ANCESTOR_LIMIT_TTL_MS:
 * read once per period, read again after it, never kept past the bound, failures never kept;
 * the reader's own cgroup is read at every call.
 */
import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ANCESTOR_LIMIT_TTL_MS, TimedFileTexts, ancestorLimits, readLimitFile } from '../../src/cgroup/limitCache';
import { readMemory } from '../../src/cgroup/read';
import { MIB, copyFixtureTree, locationIn, writeTree } from './helpers';

describe('TimedFileTexts', () => {
  let nowMs = 1000;
  let reads: string[] = [];
  let texts: Record<string, string | null> = {};
  const read = (dir: string, file: string): string | null => {
    reads.push(`${dir}/${file}`);
    const text = texts[`${dir}/${file}`];
    if (text === undefined) throw new Error(`${dir}/${file}: cgroup directory does not exist`);
    return text;
  };
  beforeEach(() => {
    nowMs = 1000;
    reads = [];
    texts = { '/a/limit': '100\n', '/b/limit': null, '/c/limit': '3\n' };
  });

  it('reads a file once per period and again once it expired', () => {
    const cache = new TimedFileTexts(1000, 10, read, () => nowMs);
    expect(cache.get('/a', 'limit')).toBe('100\n');
    texts['/a/limit'] = '200\n';
    nowMs += 999;
    expect(cache.get('/a', 'limit')).toBe('100\n');
    nowMs += 1;
    expect(cache.get('/a', 'limit')).toBe('200\n');
    expect(reads).toEqual(['/a/limit', '/a/limit']);
  });

  it('keeps a missing file as missing, and keeps nothing of a read that failed', () => {
    const cache = new TimedFileTexts(1000, 10, read, () => nowMs);
    expect(cache.get('/b', 'limit')).toBeNull();
    expect(cache.get('/b', 'limit')).toBeNull();
    expect(() => cache.get('/gone', 'limit')).toThrow(/does not exist/);
    expect(() => cache.get('/gone', 'limit')).toThrow(/does not exist/);
    expect(reads).toEqual(['/b/limit', '/gone/limit', '/gone/limit']);
    expect(cache.size).toBe(1);
  });

  it('reads again when the clock goes backwards', () => {
    const cache = new TimedFileTexts(1000, 10, read, () => nowMs);
    cache.get('/a', 'limit');
    nowMs -= 1;
    cache.get('/a', 'limit');
    expect(reads).toHaveLength(2);
  });

  it('holds at most maxEntries: past the bound it starts over', () => {
    const cache = new TimedFileTexts(1000, 2, read, () => nowMs);
    cache.get('/a', 'limit');
    cache.get('/b', 'limit');
    expect(cache.size).toBe(2);
    cache.get('/c', 'limit');
    expect(cache.size).toBe(1);
    cache.get('/a', 'limit'); // forgotten: read again
    expect(reads).toEqual(['/a/limit', '/b/limit', '/c/limit', '/a/limit']);
    expect(cache.size).toBe(2);
  });
});

describe("readLimitFile on a cgroup tree: the reader's own limit fresh, an ancestor's shared for the period", () => {
  let root: string;
  beforeEach(() => {
    ancestorLimits.clear();
    root = copyFixtureTree('v1');
    writeTree(root, {
      'memory/c3/memory.limit_in_bytes': `${500n * MIB}\n`,
      'memory/c3/memory.usage_in_bytes': `${300n * MIB}\n`,
      'memory/c3/memory.use_hierarchy': '1\n',
      'memory/c3/init.scope/memory.limit_in_bytes': `${1024n * MIB}\n`,
      'memory/c3/init.scope/memory.usage_in_bytes': `${100n * MIB}\n`,
      'memory/c3/init.scope/memory.use_hierarchy': '1\n',
      'memory/c3/init.scope/memory.stat': `total_rss ${100n * MIB}\ntotal_cache 0\nhierarchical_memory_limit ${500n * MIB}\n`,
    });
  });
  afterEach(() => {
    ancestorLimits.clear();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("a parent's new limit shows after the period; its usage and the reader's own limit at once", () => {
    const location = locationIn(root, '1:memory:/c3/init.scope');
    expect(readMemory(location)?.headroomBytes).toBe(200n * MIB); // parent: 500 - 300
    writeTree(root, { 'memory/c3/memory.usage_in_bytes': `${350n * MIB}\n` });
    expect(readMemory(location)?.headroomBytes).toBe(150n * MIB); // usage: never kept
    writeTree(root, { 'memory/c3/memory.limit_in_bytes': `${400n * MIB}\n` });
    expect(readMemory(location)?.headroomBytes).toBe(150n * MIB); // the parent's limit: kept
    writeTree(root, { 'memory/c3/init.scope/memory.limit_in_bytes': `${120n * MIB}\n` });
    expect(readMemory(location)?.headroomBytes).toBe(20n * MIB); // own limit: read every time
    const own = `${root}/memory/c3/init.scope`;
    expect(readLimitFile(own, own, 'memory.limit_in_bytes')).toBe(`${120n * MIB}\n`);
    expect(readLimitFile(`${root}/memory/c3`, own, 'memory.limit_in_bytes')).toBe(`${500n * MIB}\n`);
    expect(ANCESTOR_LIMIT_TTL_MS).toBeLessThanOrEqual(1000); // the freshness the README promises
  });
});
