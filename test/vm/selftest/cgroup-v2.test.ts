/**
 * The VM harness's own check: inside test/vm/run.sh's VM the machine is pure cgroup v2 with its
 * controllers delegated to the tests' cgroup, FUSE works, and a test can make limited cgroups
 * beneath its own with the scheme test/vm/README.md describes (move ourselves into a leaf child,
 * then delegate controllers on our own cgroup, then create siblings of that leaf).
 *
 * Run: test/vm/run.sh --config test/vm/selftest/vitest.config.mts
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP2_SUPER_MAGIC = 0x63677270;
const CONTROLLERS = ['cpuset', 'cpu', 'io', 'memory', 'pids'];
const MEMORY_LIMIT_BYTES = 268435456n;

function ownUnifiedCgroup(): string {
  const lines = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean);
  // Pure v2: one line, "0::<path>"; any other line would mean a v1 hierarchy is mounted.
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^0::\//);
  return lines[0].slice(3);
}

function pidsIn(dir: string): string[] {
  return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
}

/** Moves every process of our own cgroup into "<own>/<leaf>", then delegates the controllers on "<own>". */
function delegateOwnCgroup(leaf: string): string {
  const own = ownUnifiedCgroup();
  const ownDir = path.join(CGROUP_ROOT, own);
  if (path.basename(own) === leaf) return path.dirname(ownDir);
  const leafDir = path.join(ownDir, leaf);
  fs.mkdirSync(leafDir, { recursive: true });
  for (const pid of pidsIn(ownDir)) {
    try {
      fs.writeFileSync(path.join(leafDir, 'cgroup.procs'), pid);
    } catch {
      // The process exited between the read and the write.
    }
  }
  fs.writeFileSync(path.join(ownDir, 'cgroup.subtree_control'), CONTROLLERS.map((c) => `+${c}`).join(' '));
  return ownDir;
}

describe('the VM harness', () => {
  it('mounts cgroup2 (and nothing else) at /sys/fs/cgroup', () => {
    expect(fs.statfsSync(CGROUP_ROOT).type).toBe(CGROUP2_SUPER_MAGIC);
    expect(execFileSync('stat', ['-fc', '%T', CGROUP_ROOT], { encoding: 'utf8' }).trim()).toBe('cgroup2fs');
    const cgroupMounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => / cgroup2? /.test(l));
    expect(cgroupMounts.map((l) => l.split(' ')[2])).toEqual(['cgroup2']);
  });

  it('runs the tests in a non-root cgroup with cpuset, cpu, io, memory and pids available', () => {
    const own = ownUnifiedCgroup();
    expect(own).not.toBe('/');
    const available = fs.readFileSync(path.join(CGROUP_ROOT, own, 'cgroup.controllers'), 'utf8').trim().split(' ');
    expect(available).toEqual(expect.arrayContaining(CONTROLLERS));
  });

  it('opens /dev/fuse read-write', () => {
    const fd = fs.openSync('/dev/fuse', 'r+');
    fs.closeSync(fd);
  });

  it('gives the project directory a writable overlay (vitest caches, temp files)', () => {
    const probe = path.join(process.cwd(), `.isolfs-vm-write-probe-${process.pid}`);
    fs.writeFileSync(probe, 'ok');
    expect(fs.readFileSync(probe, 'utf8')).toBe('ok');
    fs.unlinkSync(probe);
  });
});

describe('a limited cgroup beneath our own on cgroup v2', () => {
  let parentDir: string;
  let childDir: string;
  let sleeper: ChildProcess | undefined;
  let lxcfs: ChildProcess | undefined;
  let lxcfsDir: string | undefined;

  beforeAll(() => {
    parentDir = delegateOwnCgroup('isolfs-self');
    childDir = path.join(parentDir, `isolfs-vm-selftest-${process.pid}`);
    fs.mkdirSync(childDir);
  });

  afterAll(async () => {
    if (lxcfs?.pid) {
      lxcfs.kill('SIGTERM');
      await new Promise((resolve) => lxcfs?.once('close', resolve));
    }
    if (lxcfsDir) {
      try { execFileSync('umount', ['-l', path.join(lxcfsDir, 'mnt')], { stdio: 'ignore' }); } catch { /* lxcfs unmounted it on exit */ }
      fs.rmSync(lxcfsDir, { recursive: true, force: true });
    }
    if (sleeper?.pid) sleeper.kill('SIGKILL');
    // rmdir fails with EBUSY until the killed task has left the cgroup.
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        fs.rmdirSync(childDir);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  });

  it('delegates the five controllers to children of our own cgroup', () => {
    expect(fs.readFileSync(path.join(parentDir, 'cgroup.subtree_control'), 'utf8').trim().split(' ')).toEqual(CONTROLLERS);
    expect(fs.readFileSync(path.join(childDir, 'cgroup.controllers'), 'utf8').trim().split(' ')).toEqual(CONTROLLERS);
    expect(ownUnifiedCgroup()).toBe(`${parentDir.slice(CGROUP_ROOT.length)}/isolfs-self`);
  });

  it('reads back memory.max, cpu.max, cpuset.cpus and pids.max as written', () => {
    fs.writeFileSync(path.join(childDir, 'memory.max'), String(MEMORY_LIMIT_BYTES));
    fs.writeFileSync(path.join(childDir, 'cpu.max'), '50000 100000');
    fs.writeFileSync(path.join(childDir, 'cpuset.cpus'), '0');
    fs.writeFileSync(path.join(childDir, 'pids.max'), '64');
    expect(fs.readFileSync(path.join(childDir, 'memory.max'), 'utf8')).toBe('268435456\n');
    expect(fs.readFileSync(path.join(childDir, 'cpu.max'), 'utf8')).toBe('50000 100000\n');
    expect(fs.readFileSync(path.join(childDir, 'cpuset.cpus.effective'), 'utf8')).toBe('0\n');
    expect(fs.readFileSync(path.join(childDir, 'pids.max'), 'utf8')).toBe('64\n');
  });

  it('moves a process into the limited cgroup and back out to our leaf', () => {
    sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    const pid = String(sleeper.pid);
    fs.writeFileSync(path.join(childDir, 'cgroup.procs'), pid);
    expect(pidsIn(childDir)).toEqual([pid]);
    expect(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8')).toBe(`0::${childDir.slice(CGROUP_ROOT.length)}\n`);
    // Its affinity follows cpuset.cpus=0.
    expect(execFileSync('taskset', ['-pc', pid], { encoding: 'utf8' })).toMatch(/: 0\n$/);
    const leafDir = path.join(parentDir, 'isolfs-self');
    fs.writeFileSync(path.join(leafDir, 'cgroup.procs'), pid);
    expect(pidsIn(childDir)).toEqual([]);
    expect(pidsIn(leafDir)).toContain(pid);
  });

  it('serves the limited cgroup its own MemTotal through a FUSE file system (lxcfs)', async () => {
    lxcfsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-vm-lxcfs-'));
    const mountpoint = path.join(lxcfsDir, 'mnt');
    fs.mkdirSync(mountpoint);
    lxcfs = spawn('lxcfs', ['-f', '-p', path.join(lxcfsDir, 'pid'), mountpoint], { stdio: ['ignore', 'inherit', 'inherit'] });
    const deadline = Date.now() + 30_000;
    while (!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mountpoint} `)) {
      if (Date.now() > deadline) throw new Error(`lxcfs did not mount ${mountpoint} within 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const meminfo = execFileSync('sh', ['-c', `echo $$ > ${childDir}/cgroup.procs && exec cat ${mountpoint}/proc/meminfo`], { encoding: 'utf8' });
    expect(meminfo).toMatch(new RegExp(`^MemTotal: +${MEMORY_LIMIT_BYTES / 1024n} kB$`, 'm'));
  });
});
