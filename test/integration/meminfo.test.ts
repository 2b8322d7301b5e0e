/**
 * End to end: the real daemon, a real cgroup with a 256 MiB limit beneath our own, and real
 * readers (cat, free) in a private mount namespace with the file bound over /proc/meminfo.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, isPureV2, type TestCgroup } from '../helpers/cgroups';
import { runInContainer, startContainer, type RunningContainer } from '../helpers/container';

const MIB = 1024n * 1024n;

function meminfoValue(text: string, key: string): number {
  const match = new RegExp(`^${key.replace(/[()]/g, '\\$&')}:\\s+(\\d+)`, 'm').exec(text);
  if (!match) throw new Error(`${key} missing from:\n${text}`);
  return Number(match[1]);
}

describe('/proc/meminfo in a container with a 256 MiB limit', () => {
  let daemon: DaemonHandle;
  let cgroup: TestCgroup;

  beforeAll(async () => {
    daemon = await startDaemon();
    cgroup = createTestCgroup('meminfo', { memoryLimitBytes: 256n * MIB });
  });

  afterAll(async () => {
    await daemon?.cleanup();
    await cgroup?.remove();
  });

  it('cat shows MemTotal = 262144 kB and a consistent file', async () => {
    const result = await runInContainer(cgroup, { mountpoint: daemon.mountpoint, files: ['/proc/meminfo'] }, 'cat /proc/meminfo');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const text = result.stdout;
    expect(meminfoValue(text, 'MemTotal')).toBe(262144);
    const free = meminfoValue(text, 'MemFree');
    const available = meminfoValue(text, 'MemAvailable');
    expect(free).toBeGreaterThan(0);
    expect(free).toBeLessThanOrEqual(available);
    expect(available).toBeLessThanOrEqual(262144);
    // Every key of the host's file, in the host's order.
    const keys = (t: string) => t.split('\n').filter(Boolean).map((l) => l.split(':')[0]);
    expect(keys(text)).toEqual(keys(fs.readFileSync('/proc/meminfo', 'utf8')));
  });

  it('free -m reports a total of 256', async () => {
    const result = await runInContainer(cgroup, { mountpoint: daemon.mountpoint, files: ['/proc/meminfo'] }, 'free -m');
    expect(result.code).toBe(0);
    const mem = result.stdout.split('\n').find((l) => l.startsWith('Mem:'));
    expect(mem, result.stdout).toBeDefined();
    expect(Number((mem as string).split(/\s+/)[1])).toBe(256);
  });

  it('memory the container uses shows up as used', async () => {
    // 64 MiB of tmpfs-free anonymous memory held by a process while free runs.
    const result = await runInContainer(cgroup, { mountpoint: daemon.mountpoint, files: ['/proc/meminfo'] },
      `node -e "const b = Buffer.alloc(64 * 1024 * 1024, 1); require('child_process').execSync('cat /proc/meminfo', { stdio: 'inherit' }); b[0]"`);
    expect(result.code, result.stderr).toBe(0);
    const total = meminfoValue(result.stdout, 'MemTotal');
    const available = meminfoValue(result.stdout, 'MemAvailable');
    expect(total - available).toBeGreaterThanOrEqual(64 * 1024);
  });

  it("a reader outside any limit sees the host's MemTotal", () => {
    const hostTotal = meminfoValue(fs.readFileSync('/proc/meminfo', 'utf8'), 'MemTotal');
    const served = fs.readFileSync(`${daemon.mountpoint}/proc/meminfo`, 'utf8');
    expect(meminfoValue(served, 'MemTotal')).toBe(hostTotal);
  });
});

/**
 * A child cgroup of `parent`'s memory cgroup (the other controllers stay the parent's), as a
 * TestCgroup a container can join. v2: the parent delegates memory to its children first.
 */
function memoryChild(parent: TestCgroup, name: string): TestCgroup {
  const parentDir = parent.dirs.get('memory');
  if (parentDir === undefined) throw new Error('the test cgroup has no memory controller');
  if (isPureV2()) fs.writeFileSync(path.join(parentDir, 'cgroup.subtree_control'), '+memory');
  const dir = path.join(parentDir, name);
  fs.mkdirSync(dir);
  const parentProcs = path.join(parentDir, 'cgroup.procs');
  const procsFiles = isPureV2()
    ? [path.join(dir, 'cgroup.procs')]
    : parent.procsFiles.map((f) => (f === parentProcs ? path.join(dir, 'cgroup.procs') : f));
  return {
    name,
    dirs: new Map([...parent.dirs].map(([c, d]) => [c, d === parentDir ? dir : d])),
    key: `${parent.key}/${name}`,
    procsFiles,
    remove: async () => {
      const deadline = Date.now() + 5000;
      while (true) {
        try { fs.rmdirSync(dir); return; } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') return;
          if (code !== 'EBUSY' || Date.now() > deadline) throw err;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    },
  };
}

function memoryUsageBytes(dir: string): number {
  const file = isPureV2() ? 'memory.current' : 'memory.usage_in_bytes';
  return Number(fs.readFileSync(path.join(dir, file), 'utf8'));
}

// Issue 10, item 8. Rule: MemFree is the least (limit - usage) over the reader's cgroup and
// every ancestor with a limit, so memory a sibling holds under a shared limit is not "free".
describe('/proc/meminfo under a 500 MiB parent whose other child holds 100 MiB', () => {
  let daemon: DaemonHandle;
  let parent: TestCgroup;
  let holderCgroup: TestCgroup;
  let readerCgroup: TestCgroup;
  let holder: RunningContainer | undefined;

  beforeAll(async () => {
    daemon = await startDaemon();
    parent = createTestCgroup('headroom', { memoryLimitBytes: 500n * MIB });
    holderCgroup = memoryChild(parent, 'svc');
    readerCgroup = memoryChild(parent, 'reader');
    holder = startContainer(holderCgroup, { mountpoint: null },
      `exec node -e "const b = Buffer.alloc(100 * 1024 * 1024, 1); setInterval(() => b[0], 1000)"`);
    const deadline = Date.now() + 20_000;
    while (memoryUsageBytes(holderCgroup.dirs.get('memory')!) < 100 * 1024 * 1024) {
      if (Date.now() > deadline) throw new Error('the holder never reached 100 MiB');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  afterAll(async () => {
    await holder?.stop();
    await daemon?.cleanup();
    await holderCgroup?.remove();
    await readerCgroup?.remove();
    await parent?.remove();
  });

  it("MemFree and MemAvailable are the parent's remaining headroom, not 500 MiB minus the reader's usage", async () => {
    const result = await runInContainer(readerCgroup, { mountpoint: daemon.mountpoint, files: ['/proc/meminfo'] }, 'cat /proc/meminfo');
    expect(result.code, result.stderr).toBe(0);
    const parentUsedKb = memoryUsageBytes(parent.dirs.get('memory')!) / 1024;
    const text = result.stdout;
    expect(meminfoValue(text, 'MemTotal')).toBe(512000);
    const free = meminfoValue(text, 'MemFree');
    const available = meminfoValue(text, 'MemAvailable');
    // Without the ancestor walk MemFree was ~500 MiB minus the reader's few MiB (> 480 MiB).
    expect(free).toBeLessThanOrEqual(512000 - 100 * 1024);
    // The parent's headroom as read just after, within what the reader itself moved meanwhile.
    expect(Math.abs(free - (512000 - parentUsedKb))).toBeLessThan(16 * 1024);
    expect(available).toBeGreaterThanOrEqual(free);
    expect(available).toBeLessThan(512000 - 90 * 1024);
  });
});
