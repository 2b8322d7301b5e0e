/**
 * A cgroup file kept open (host/heldFiles.ts) never serves what a fresh open would not: on a
 * real cgroup, removed and then recreated under the same path, the kept fd is refused by the
 * kernel (ENODEV), the cache opens the path again and reads the new cgroup's value.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { CGROUP_ROOT, createTestCgroup, isPureV2, type TestCgroup } from '../helpers/cgroups';
import { discoverHierarchy } from '../../src/cgroup/hierarchy';
import { readTaskCounts } from '../../src/cgroup/read';
import { locateProcess } from '../../src/identity/processCgroup';
import { TaskFdBudget, TaskStatFiles } from '../../src/host/taskStatFiles';
import { HELD_FILE_CHECK_MS, HeldFiles } from '../../src/host/heldFiles';
import type { FileReadError } from '../../src/host/boundedRead';

const MIB = 1024n * 1024n;
let cgroup: TestCgroup | null = null;
const files = new HeldFiles();
/** Directories a test made by hand (a renamed cgroup and the one made in its place), removed after it. */
const madeDirs: string[] = [];

afterEach(async () => {
  files.clear();
  for (const dir of madeDirs.splice(0)) { try { fs.rmdirSync(dir); } catch { /* not made, or gone */ } }
  await cgroup?.remove();
  cgroup = null;
});

describe('kept cgroup files on a real cgroup', () => {
  it('a removed cgroup is gone, a recreated one shows its own value', async () => {
    const limitFile = isPureV2() ? 'memory.max' : 'memory.limit_in_bytes';
    cgroup = createTestCgroup('held', { memoryLimitBytes: 100n * MIB });
    const dir = cgroup.dirs.get('memory');
    if (dir === undefined) throw new Error('no memory cgroup made');
    expect(files.readText(dir, limitFile).trim()).toBe(String(100n * MIB));
    expect(files.size).toBe(1); // kept: a kernfs file
    expect(files.readText(dir, limitFile).trim()).toBe(String(100n * MIB));

    await cgroup.remove();
    cgroup = null;
    let error: unknown = null;
    try {
      files.readText(dir, limitFile);
    } catch (err) {
      error = err;
    }
    // By name: a module registry reset elsewhere in a shared worker makes instanceof unreliable.
    expect((error as FileReadError | null)?.name).toBe('FileReadError');
    expect((error as FileReadError).code).toBe('ENOENT');
    expect(files.size).toBe(0);

    cgroup = createTestCgroup('held', { memoryLimitBytes: 200n * MIB });
    expect(cgroup.dirs.get('memory')).toBe(dir);
    expect(files.readText(dir, limitFile).trim()).toBe(String(200n * MIB));
    expect(files.size).toBe(1);
  });

  // cgroup2 has no rename (its kernfs gives it none): a kept fd's path cannot change cgroups there.
  it.runIf(isPureV2())('cgroup2 refuses to rename a cgroup', () => {
    cgroup = createTestCgroup('held-rename', { memoryLimitBytes: 100n * MIB });
    const dir = cgroup.dirs.get('memory') as string;
    expect(() => fs.renameSync(dir, `${dir}-old`)).toThrow();
  });

  it.skipIf(isPureV2())('a cgroup renamed away (v1) and another made under its path: the kept fd is not read as the new one', () => {
    cgroup = createTestCgroup('held-rename', { memoryLimitBytes: 100n * MIB });
    const dir = cgroup.dirs.get('memory');
    if (dir === undefined) throw new Error('no memory cgroup made');
    let nowMs = 1000;
    const timed = new HeldFiles({ nowMs: () => nowMs });
    try {
      expect(timed.readText(dir, 'memory.limit_in_bytes').trim()).toBe(String(100n * MIB));
      expect(timed.size).toBe(1);
      // cgroup v1 renames a directory within its parent (cgroup1_rename): whoever may write the
      // parent (a delegated subtree) can move a cgroup away and make another under its name.
      fs.renameSync(dir, `${dir}-old`);
      madeDirs.push(`${dir}-old`);
      fs.mkdirSync(dir);
      madeDirs.unshift(dir);
      fs.writeFileSync(`${dir}/memory.limit_in_bytes`, String(200n * MIB));
      // The renamed cgroup is alive: its kept fd still reads it. Within HELD_FILE_CHECK_MS the
      // path is looked at again and the new cgroup's file is read.
      nowMs += HELD_FILE_CHECK_MS;
      expect(timed.readText(dir, 'memory.limit_in_bytes').trim()).toBe(String(200n * MIB));
      expect(timed.size).toBe(1);
    } finally {
      timed.clear();
    }
  });
});

describe('kept task files on a real cgroup', () => {
  const sleepers: ChildProcess[] = [];
  let sibling: TestCgroup | null = null;
  afterEach(async () => {
    for (const child of sleepers.splice(0)) child.kill('SIGKILL');
    await sibling?.remove();
    sibling = null;
  });

  it('count as fresh reads do; a task moved out is no longer counted and its file is closed', () => {
    cgroup = createTestCgroup('held-tasks');
    const procsFiles = cgroup.procsFiles;
    const children = [spawn('sleep', ['60'], { stdio: 'ignore' }), spawn('sleep', ['60'], { stdio: 'ignore' })];
    sleepers.push(...children);
    const pids = children.map((child) => child.pid as number);
    for (const pid of pids) for (const file of procsFiles) fs.writeFileSync(file, String(pid));
    const located = locateProcess('/proc', discoverHierarchy(CGROUP_ROOT), pids[0] as number);
    if (!located.found) throw new Error(located.why);
    const budget = new TaskFdBudget(100);
    const taskFiles = new TaskStatFiles(budget);
    try {
      expect(readTaskCounts(located.location, '/proc', 1000, taskFiles)).toMatchObject({ total: 2 });
      expect(taskFiles.size).toBe(2);
      expect(readTaskCounts(located.location, '/proc', 1000, taskFiles)).toEqual(readTaskCounts(located.location, '/proc', 1000));

      // Into a sibling cgroup (not the parent: cgroup2 allows no process in a cgroup that
      // delegates controllers): the next count closes its file.
      sibling = createTestCgroup('held-tasks-out');
      for (const file of sibling.procsFiles) fs.writeFileSync(file, String(pids[1]));
      expect(readTaskCounts(located.location, '/proc', 1000, taskFiles)).toMatchObject({ total: 1 });
      expect(taskFiles.size).toBe(1);
      expect(budget.held).toBe(1);
    } finally {
      taskFiles.closeAll();
    }
    expect(budget.held).toBe(0);
  });
});

