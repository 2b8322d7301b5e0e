/**
 * Kept-open /proc/<tid>/stat files (host/taskStatFiles.ts): a kept fd reads the task's state as it
 * is now; a task that exits reads as gone and its fd is closed; tasks no longer listed are closed
 * (keepOnly); the node-wide budget bounds what is kept, and what is over it is still read.
 * Real tasks (children of this process) in the real /proc, plus the fixture /proc for counts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readTaskCounts } from '../../src/cgroup/read';
import { CgroupParseError, type CgroupLocation } from '../../src/cgroup/snapshot';
import { TaskFdBudget, TaskStatFiles } from '../../src/host/taskStatFiles';
import { FIXTURES, v1Location } from '../cgroup/helpers';

const children: ChildProcess[] = [];
const kept: TaskStatFiles[] = [];

afterEach(() => {
  for (const files of kept.splice(0)) files.closeAll();
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** A child `sleep`, once it sleeps (a fresh child runs for a moment: exec). */
async function sleeper(): Promise<{ child: ChildProcess; id: string }> {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(child);
  if (child.pid === undefined) throw new Error('sleep did not start');
  const id = String(child.pid);
  await waitFor('sleep to sleep', () => stateOf(fs.readFileSync(`/proc/${id}/stat`, 'latin1')) === 'S');
  return { child, id };
}

function filesWith(budget: TaskFdBudget): TaskStatFiles {
  const files = new TaskStatFiles(budget);
  kept.push(files);
  return files;
}

/** The state letter of a /proc/<tid>/stat text. */
function stateOf(text: string | null): string | undefined {
  return text === null ? undefined : text.charAt(text.lastIndexOf(')') + 2);
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

async function waitFor(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('TaskStatFiles', () => {
  it('keeps the file open and reads the task as it is now (stopped, then running again)', async () => {
    const budget = new TaskFdBudget(10);
    const files = filesWith(budget);
    const { child, id } = await sleeper();
    const fdsBefore = openFds();
    expect(stateOf(files.read('/proc', id))).toBe('S');
    expect(files.size).toBe(1);
    expect(budget.held).toBe(1);
    expect(openFds()).toBe(fdsBefore + 1);

    child.kill('SIGSTOP');
    await waitFor('the stopped state', () => stateOf(files.read('/proc', id)) === 'T');
    child.kill('SIGCONT');
    await waitFor('the sleeping state again', () => stateOf(files.read('/proc', id)) === 'S');
    expect(openFds()).toBe(fdsBefore + 1); // read again through the same fd, nothing more opened
  });

  it('says a task that exited is gone, and closes its file', async () => {
    const budget = new TaskFdBudget(10);
    const files = filesWith(budget);
    const { child, id } = await sleeper();
    expect(files.read('/proc', id)).not.toBeNull();
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited; // reaped: the kept fd's task is gone
    expect(files.read('/proc', id)).toBeNull();
    expect(files.size).toBe(0);
    expect(budget.held).toBe(0);
  });

  it('closes the files of tasks no longer listed, and all of them at the end', async () => {
    const budget = new TaskFdBudget(10);
    const files = filesWith(budget);
    const a = await sleeper();
    const b = await sleeper();
    files.read('/proc', a.id);
    files.read('/proc', b.id);
    expect(budget.held).toBe(2);
    files.keepOnly(new Set([b.id]));
    expect(files.size).toBe(1);
    expect(budget.held).toBe(1);
    files.closeAll();
    expect(files.size).toBe(0);
    expect(budget.held).toBe(0);
  });

  it('keeps no more than the budget shared by every container, and still reads what is over it', async () => {
    const budget = new TaskFdBudget(1);
    const first = filesWith(budget);
    const second = filesWith(budget);
    const a = await sleeper();
    const b = await sleeper();
    expect(stateOf(first.read('/proc', a.id))).toBe('S');
    const fdsBefore = openFds();
    expect(stateOf(second.read('/proc', b.id))).toBe('S');
    expect(second.size).toBe(0);
    expect(budget.held).toBe(1);
    expect(openFds()).toBe(fdsBefore);
    first.closeAll();
    expect(stateOf(second.read('/proc', b.id))).toBe('S'); // room again: kept now
    expect(second.size).toBe(1);
  });

  it("keeps no more than its own cap of one container's tasks, whatever the budget left", async () => {
    const budget = new TaskFdBudget(10);
    const files = new TaskStatFiles(budget, 1);
    kept.push(files);
    const a = await sleeper();
    const b = await sleeper();
    expect(stateOf(files.read('/proc', a.id))).toBe('S');
    expect(stateOf(files.read('/proc', b.id))).toBe('S'); // read, not kept
    expect(files.size).toBe(1);
    expect(budget.held).toBe(1);
    const other = filesWith(budget); // another container: its own cap
    expect(other.read('/proc', b.id)).not.toBeNull();
    expect(other.size).toBe(1);
    expect(budget.held).toBe(2);
  });

  it('gives the same counts as reading every task afresh, and keeps one fd per counted task', () => {
    const budget = new TaskFdBudget(10);
    const files = filesWith(budget);
    const proc = `${FIXTURES}/proc`;
    const loc = v1Location('v1', '/limited');
    const fresh = readTaskCounts(loc, proc, 1000);
    expect(readTaskCounts(loc, proc, 1000, files)).toEqual(fresh);
    expect(readTaskCounts(loc, proc, 1000, files)).toEqual(fresh); // through the kept fds
    expect(files.size).toBe(fresh.total);
    expect(readTaskCounts(loc, proc, 2, files)).toMatchObject({ total: 2, truncated: true });
    expect(files.size).toBe(2); // the tasks the last count did not reach are closed
  });

  it('refuses a listed id that is not a number, as a fresh read does', () => {
    const files = filesWith(new TaskFdBudget(10));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-taskfds-'));
    try {
      fs.writeFileSync(path.join(dir, 'tasks'), '../self\n');
      const loc: CgroupLocation = { key: '/cg', version: 1, dirs: { memory: dir }, roots: { memory: path.dirname(dir) }, unifiedDir: null };
      expect(() => readTaskCounts(loc, '/proc', 1000, files)).toThrow(CgroupParseError);
      expect(() => readTaskCounts(loc, '/proc', 1000)).toThrow(CgroupParseError);
      expect(files.size).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
