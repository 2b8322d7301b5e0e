/**
 * Malformed cgroup trees (issue 10, item 5): a file that would make a read wait or allocate is
 * an error naming the cgroup directory and file, answered promptly, never a stall or a huge array.
 */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readCpuLimits, readCpuUsage, readMemory, readTaskCounts } from '../../src/cgroup/read';
import { CgroupParseError, type CgroupLocation } from '../../src/cgroup/snapshot';
import { FileReadError, DEFAULT_MAX_BYTES } from '../../src/host/boundedRead';
import { copyFixtureTree, locationIn } from './helpers';

const CPUACCT = 'cpu,cpuacct/limited';
let root: string;

beforeEach(() => { root = copyFixtureTree('v1'); });
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function limited(): CgroupLocation {
  return locationIn(root, ['1:memory:/limited', '2:cpu,cpuacct:/limited', '3:cpuset:/limited', '4:pids:/limited'].join('\n'));
}

/** Runs `f`, expects a CgroupParseError within `ms`, and returns its message. */
function promptError(f: () => unknown, ms = 500): string {
  const started = Date.now();
  let caught: unknown = null;
  try { f(); } catch (err) { caught = err; }
  expect(Date.now() - started).toBeLessThan(ms);
  expect(caught).toBeInstanceOf(CgroupParseError);
  return (caught as Error).message;
}

describe('CPU ids are range-checked before they index anything', () => {
  it.each(['4294967294', '5000000', '8'])('cpuacct.usage_all naming cpu %s (host has 8) is an error', (id) => {
    fs.appendFileSync(`${root}/${CPUACCT}/cpuacct.usage_all`, `${id} 1 1\n`);
    const heapBefore = process.memoryUsage().heapUsed;
    const message = promptError(() => readCpuUsage(limited()));
    expect(message).toBe(`${root}/${CPUACCT}/cpuacct.usage_all: cpu id ${id} out of range (the host has at most 8 CPUs)`);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 1024 * 1024);
  });

  it('a negative or duplicated cpu id is an error too', () => {
    const file = `${root}/${CPUACCT}/cpuacct.usage_all`;
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, `${text}-1 1 1\n`);
    expect(promptError(() => readCpuUsage(limited()))).toMatch(/cpu id -1 out of range/);
    fs.writeFileSync(file, `${text}0 1 1\n`);
    expect(promptError(() => readCpuUsage(limited()))).toMatch(/cpu 0 appears twice/);
  });

  it('a per-CPU list longer than the host has CPUs is an error', () => {
    const dir = `${root}/cpu,cpuacct/oldkernel`;
    fs.writeFileSync(`${dir}/cpuacct.usage_percpu`, `${'1 '.repeat(9)}\n`);
    const loc = locationIn(root, '2:cpu,cpuacct:/oldkernel');
    expect(promptError(() => readCpuUsage(loc))).toBe(`${dir}/cpuacct.usage_percpu: 9 values, but the host has at most 8 CPUs`);
  });

  it('a cpuset of "0-4294967294" is an error, not a four-billion-step loop', () => {
    fs.writeFileSync(`${root}/cpuset/limited/cpuset.effective_cpus`, '0-4294967294\n');
    expect(promptError(() => readCpuLimits(limited()))).toMatch(/cpuset\/limited\/cpuset\.effective_cpus: CPU id 4294967294 out of range/);
  });

  it('a cpuset of a million repeated full ranges is parsed in bounded time', () => {
    fs.writeFileSync(`${root}/cpuset/limited/cpuset.effective_cpus`, `${new Array(80_000).fill('0-7').join(',')}\n`);
    const started = Date.now();
    expect(readCpuLimits(limited()).cpusetCpus).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(Date.now() - started).toBeLessThan(500);
  });
});

describe('files that would stall or balloon a read', () => {
  it('a memory.stat that is a FIFO is an error at once, naming the file', () => {
    const file = `${root}/memory/limited/memory.stat`;
    fs.rmSync(file);
    execFileSync('mkfifo', [file]);
    const message = promptError(() => readMemory(limited()));
    expect(message).toBe(`${file}: is a FIFO, not a regular file`);
  });

  it('a FIFO with a writer attached that never writes is refused the same way', () => {
    const file = `${root}/memory/limited/memory.stat`;
    fs.rmSync(file);
    execFileSync('mkfifo', [file]);
    const writer = fs.openSync(file, fs.constants.O_RDWR); // holds both ends: reads would block
    try {
      expect(promptError(() => readMemory(limited()))).toMatch(/is a FIFO/);
    } finally {
      fs.closeSync(writer);
    }
  });

  it('a memory.stat over the size cap is an error saying so', () => {
    const file = `${root}/memory/limited/memory.stat`;
    fs.writeFileSync(file, "total_cache 1\n".repeat(DEFAULT_MAX_BYTES / 14 + 1));
    expect(promptError(() => readMemory(limited()))).toBe(`${file}: larger than ${DEFAULT_MAX_BYTES} bytes`);
  });

  it('a directory where memory.limit_in_bytes should be is an error', () => {
    const file = `${root}/memory/limited/memory.usage_in_bytes`;
    fs.rmSync(file);
    fs.mkdirSync(file);
    expect(promptError(() => readMemory(limited()))).toBe(`${file}: is a directory, not a regular file`);
  });

  it('an error is a FileReadError with the errno-like code', () => {
    fs.rmSync(`${root}/cpu,cpuacct/limited/cpuacct.usage_all`);
    fs.mkdirSync(`${root}/cpu,cpuacct/limited/cpuacct.usage_all`);
    let caught: unknown = null;
    try {
      readCpuUsage(limited());
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FileReadError);
    expect((caught as FileReadError).code).toBe('NOT_REGULAR');
  });

  it('a tasks file that is a FIFO fails the count promptly', () => {
    const file = `${root}/memory/limited/tasks`;
    fs.rmSync(file);
    execFileSync('mkfifo', [file]);
    expect(promptError(() => readTaskCounts(limited(), '/proc', 1000))).toMatch(/tasks: is a FIFO/);
  });

  it('a task list over the cap is cut there and counted as a lower bound', () => {
    // Ids above pid_max's limit (2^22): none exists, each is looked up and skipped.
    fs.writeFileSync(`${root}/memory/limited/tasks`, `${process.pid}\n${'9999999\n'.repeat(200_000)}`); // 1.6 MB
    const counts = readTaskCounts(limited(), '/proc', 1_000_000);
    expect(counts.truncated).toBe(true);
    expect(counts.total).toBe(1);
  });

  it('a container with thousands of child cgroups is walked only so far', () => {
    for (let i = 0; i < 1200; i++) fs.mkdirSync(`${root}/memory/limited/c${i}`);
    const started = Date.now();
    const counts = readTaskCounts(limited(), '/proc', 1000);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(counts.truncated).toBe(true);
  });

  it('a task id that is not a number is an error, not a path', () => {
    fs.writeFileSync(`${root}/memory/limited/tasks`, '../../etc\n');
    expect(promptError(() => readTaskCounts(limited(), '/proc', 1000))).toMatch(/listed task id is not a number/);
  });
});
