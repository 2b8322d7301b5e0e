import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_BYTES,
  FileReadError,
  readBoundedBuffer,
  readBoundedPrefix,
  readBoundedText,
} from '../../src/host/boundedRead';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { readHostMeminfo, parseMeminfo } from '../../src/host/meminfo';
import { readHostStat } from '../../src/host/stat';
import { readHostCpuCountLimit } from '../../src/host/cpuOnline';

let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-bounded-'));
  fs.writeFileSync(path.join(dir, 'small'), 'MemTotal: 1 kB\n');
  fs.writeFileSync(path.join(dir, 'huge'), Buffer.alloc(DEFAULT_MAX_BYTES + 1, 'a'));
  fs.mkdirSync(path.join(dir, 'meminfo-dir'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function errorOf(f: () => unknown): FileReadError {
  let caught: unknown = null;
  try {
    f();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(FileReadError);
  expect(caught).toBeInstanceOf(CgroupParseError); // so the backend answers EIO and logs the file
  return caught as FileReadError;
}

describe('readBoundedText', () => {
  it('reads a regular file and a kernel file (size 0 in fstat)', () => {
    expect(readBoundedText(dir, 'small')).toBe('MemTotal: 1 kB\n');
    expect(readBoundedText('/proc', 'meminfo')).toMatch(/^MemTotal:/);
    expect(readBoundedBuffer('/proc', 'meminfo').toString()).toMatch(/^MemTotal:/);
  });

  it('refuses a FIFO at once instead of waiting for a writer', () => {
    const started = Date.now();
    const err = errorOf(() => readBoundedText(dir, 'fifo'));
    expect(Date.now() - started).toBeLessThan(500);
    expect(err.code).toBe('NOT_REGULAR');
    expect(err.message).toBe(`${dir}/fifo: is a FIFO, not a regular file`);
    expect(err.dir).toBe(dir);
    expect(err.file).toBe('fifo');
  });

  it('refuses a directory where a file should be', () => {
    const err = errorOf(() => readBoundedText(dir, 'meminfo-dir'));
    expect(err.code).toBe('NOT_REGULAR');
    expect(err.message).toMatch(/is a directory, not a regular file$/);
  });

  it('refuses a file over the cap, and says the cap', () => {
    const err = errorOf(() => readBoundedText(dir, 'huge'));
    expect(err.code).toBe('TOO_LARGE');
    expect(err.message).toBe(`${dir}/huge: larger than ${DEFAULT_MAX_BYTES} bytes`);
    expect(() => readBoundedText(dir, 'small', 4)).toThrow('larger than 4 bytes');
  });

  it('finds a kernel file over the cap by reading (fstat says size 0)', () => {
    expect(fs.statSync('/proc/self/maps').size).toBe(0);
    expect(() => readBoundedText('/proc/self', 'maps', 16)).toThrow(/maps: larger than 16 bytes/);
  });

  it('names the errno of a missing file', () => {
    const err = errorOf(() => readBoundedText(dir, 'absent'));
    expect(err.code).toBe('ENOENT');
    expect(err.message).toBe(`${dir}/absent: ENOENT: no such file or directory`);
  });

  it('gives the head of a long file when asked for a prefix', () => {
    expect(readBoundedPrefix(dir, 'huge', 10)).toEqual({ text: 'aaaaaaaaaa', truncated: true });
    expect(readBoundedPrefix(dir, 'small', 100)).toEqual({ text: 'MemTotal: 1 kB\n', truncated: false });
  });

  it('returns a copy: a later read does not change an earlier buffer', () => {
    const first = readBoundedBuffer(dir, 'small');
    readBoundedBuffer(dir, 'huge', 2 * DEFAULT_MAX_BYTES);
    expect(first.toString()).toBe('MemTotal: 1 kB\n');
  });
});

describe('host readers go through the bounded read', () => {
  it('a /proc/meminfo that is a FIFO is an error naming it, not a hang', () => {
    const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-proc-'));
    try {
      execFileSync('mkfifo', [path.join(proc, 'meminfo')]);
      fs.mkdirSync(path.join(proc, 'stat'));
      expect(() => readHostMeminfo(proc)).toThrow(`${proc}/meminfo: is a FIFO, not a regular file`);
      expect(() => readHostStat(proc)).toThrow(`${proc}/stat: is a directory, not a regular file`);
    } finally {
      fs.rmSync(proc, { recursive: true, force: true });
    }
  });

  it('a value of more than 20 digits is a parse error, not a megabyte BigInt', () => {
    expect(() => parseMeminfo(`MemTotal: ${'9'.repeat(100_000)} kB\n`)).toThrow(CgroupParseError);
  });
});

describe('readHostCpuCountLimit', () => {
  let sys: string;
  beforeAll(() => { sys = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-sys-')); });
  afterAll(() => fs.rmSync(sys, { recursive: true, force: true }));

  it('is the highest possible CPU + 1 on this host', () => {
    const possible = fs.readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
    const last = Number(possible.split(/[-,]/).pop());
    expect(readHostCpuCountLimit()).toBe(last + 1);
  });

  it('falls back to kernel_max + 1, then to the 8192 ceiling', () => {
    fs.mkdirSync(path.join(sys, 'devices/system/cpu'), { recursive: true });
    expect(readHostCpuCountLimit(sys)).toBe(8192);
    fs.writeFileSync(path.join(sys, 'devices/system/cpu/kernel_max'), '255\n');
    expect(readHostCpuCountLimit(sys)).toBe(256);
    fs.writeFileSync(path.join(sys, 'devices/system/cpu/possible'), '0-4294967294\n');
    expect(readHostCpuCountLimit(sys)).toBe(256); // out of range: not believed
    fs.writeFileSync(path.join(sys, 'devices/system/cpu/possible'), '0-3\n');
    expect(readHostCpuCountLimit(sys)).toBe(4);
  });
});
