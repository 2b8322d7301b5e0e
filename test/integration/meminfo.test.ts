/**
 * End to end: the real daemon, a real cgroup with a 256 MiB limit beneath our own, and real
 * readers (cat, free) in a private mount namespace with the file bound over /proc/meminfo.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { runInContainer } from '../helpers/container';

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
