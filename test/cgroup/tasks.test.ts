import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { discoverHierarchy, locateCgroup } from '../../src/cgroup/hierarchy';
import { readTaskCounts } from '../../src/cgroup/read';
import { readOldestProcess } from '../../src/cgroup/tasks';
import { readProcCgroup } from '../../src/identity/procCgroup';
import { CgroupParseError, type CgroupLocation } from '../../src/cgroup/snapshot';
import { FIXTURES, v1Location, v2Location } from './helpers';

const PROC = `${FIXTURES}/proc`;

describe('readTaskCounts', () => {
  it('counts v1 threads by state from /proc/<tid>/stat, parsing after the last ")"', () => {
    // tasks: 100 (S), 101 (R, named "worker) D (x"), 102 (D), 200 (R); cgroup.procs: 100, 200
    expect(readTaskCounts(v1Location('v1', '/limited'), PROC, 1000)).toEqual({
      running: 2,
      blocked: 1,
      total: 4,
      truncated: false,
    });
  });

  it('counts v2 threads from cgroup.threads, including child cgroups', () => {
    // pod-a itself has no tasks; container-a.scope has the same four threads
    const pod = readTaskCounts(v2Location('/kubepods.slice/pod-a.slice'), PROC, 1000);
    expect(pod).toEqual({ running: 2, blocked: 1, total: 4, truncated: false });
  });

  it('stops at maxTasks and marks the counts as truncated', () => {
    const counts = readTaskCounts(v1Location('v1', '/limited'), PROC, 2);
    expect(counts.total).toBe(2);
    expect(counts.truncated).toBe(true);
  });

  describe('with tasks that vanish', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-tasks-'));
    afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it('skips a thread that exited between listing and reading', () => {
      const dir = path.join(tmp, 'cg');
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'tasks'), '100\n424242\n');
      fs.writeFileSync(path.join(dir, 'cgroup.procs'), '100\n424242\n');
      const loc: CgroupLocation = { key: '/cg', version: 1, dirs: { memory: dir }, roots: { memory: tmp }, unifiedDir: null };
      expect(readTaskCounts(loc, PROC, 1000)).toMatchObject({ total: 1 });
      expect(readOldestProcess(loc, PROC)).toEqual({ pid: 100, startTicks: 354461n });
    });

    it('throws a CgroupParseError when the cgroup itself is gone', () => {
      const loc: CgroupLocation = { key: '/x', version: 1, dirs: { memory: path.join(tmp, 'gone') }, roots: { memory: tmp }, unifiedDir: null };
      expect(() => readTaskCounts(loc, PROC, 1000)).toThrow(CgroupParseError);
    });
  });

  it('counts nothing when the location has no task directory', () => {
    const loc: CgroupLocation = { key: '/', version: 1, dirs: {}, roots: {}, unifiedDir: null };
    expect(readTaskCounts(loc, PROC, 1000)).toEqual({ running: 0, blocked: 0, total: 0, truncated: false });
  });

  it("counts this process's own threads in its live cgroup", () => {
    const loc = liveLocation();
    const counts = readTaskCounts(loc, '/proc', 100_000);
    expect(counts.total).toBeGreaterThanOrEqual(1);
    expect(counts.running).toBeGreaterThanOrEqual(1); // this very thread is running
  });
});

describe('readOldestProcess', () => {
  it('gives the process with the smallest starttime (field 22), and that start time', () => {
    expect(readOldestProcess(v1Location('v1', '/limited'), PROC)).toEqual({ pid: 100, startTicks: 354461n });
  });

  it('includes processes of child cgroups', () => {
    // kubepods.slice: pod-a (100, 200) and pod-b/app.scope (300, starttime 1000)
    expect(readOldestProcess(v2Location('/kubepods.slice'), PROC)).toEqual({ pid: 300, startTicks: 1000n });
  });

  it('is null for a cgroup without processes', () => {
    expect(readOldestProcess(v2Location('/system.slice/noswap.service'), PROC)).toBeNull();
  });

  it('reads at most maxProcesses processes', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-oldest-'));
    try {
      fs.writeFileSync(path.join(tmp, 'cgroup.procs'), '200\n100\n'); // 200 starts at 354900, 100 at 354461
      const loc: CgroupLocation = { key: '/cg', version: 1, dirs: { memory: tmp }, roots: { memory: tmp }, unifiedDir: null };
      expect(readOldestProcess(loc, PROC, 1)?.pid).toBe(200);
      expect(readOldestProcess(loc, PROC)?.pid).toBe(100);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('is at most the start time of this process in its live cgroup', () => {
    const fields = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    const ownStart = BigInt(fields[22 - 3]!);
    const oldest = readOldestProcess(liveLocation(), '/proc');
    expect(oldest).not.toBeNull();
    expect(oldest!.startTicks <= ownStart).toBe(true);
  });
});

/** This process's own cgroup on the live machine. */
function liveLocation(): CgroupLocation {
  return locateCgroup(discoverHierarchy('/sys/fs/cgroup'), readProcCgroup('/proc', process.pid)!);
}
