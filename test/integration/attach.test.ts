/**
 * --attach and repair on the real mount: a "container" (a cgroup beneath ours and its own mount
 * and pid namespaces) that binds nothing gets its files attached by the daemon, /proc/vmstat
 * included; a second one binds the shared files at creation (hostPath style). Then the daemon is
 * killed with SIGKILL and started again: both containers' mounts come back to life without the
 * containers being restarted.
 */
import fs from 'node:fs';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { startContainer, type RunningContainer } from '../helpers/container';

const MIB = 1024n * 1024n;
const HOST_MEMTOTAL_KB = Number(/MemTotal:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1]);

/** Runs `cmd` in the container's mount namespace, from its cgroup (as its own processes do). */
function readInside(container: RunningContainer, cgroup: TestCgroup, cmd: string): Promise<{ stdout: string; stderr: string; code: number }> {
  const pid = container.process.pid;
  const join = cgroup.procsFiles.map((f) => `echo $$ > ${f}`).join('; ');
  return new Promise((resolve) => {
    execFile('bash', ['-c', `${join}; exec nsenter -t ${pid} -m sh -c '${cmd}'`], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? (typeof err.code === 'number' ? err.code : 1) : 0 });
    });
  });
}

/** The fuse.isolfs mounts of the container's namespace: [root inside isolfs, mountpoint]. */
function isolfsMounts(container: RunningContainer): [string, string][] {
  // From the host: /proc/self inside the container's procfs would not be us.
  const text = fs.readFileSync(`/proc/${container.process.pid}/mountinfo`, 'utf8');
  return text.split('\n').filter((l) => l.includes(' - fuse.isolfs ')).map((l) => {
    const f = l.split(' ');
    return [f[3], f[4]];
  });
}

function memTotalKb(text: string): number | null {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) : null;
}

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (!ok(last)) {
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
    last = await probe();
  }
  return last;
}

describe('--attach and repair after kill -9', () => {
  let daemon: DaemonHandle;
  let attachedCg: TestCgroup; // 192 MiB, nothing bound at creation
  let boundCg: TestCgroup; // 160 MiB, shared files bound at creation
  let attached: RunningContainer;
  let bound: RunningContainer;

  beforeAll(async () => {
    attachedCg = createTestCgroup('attach-a', { memoryLimitBytes: 192n * MIB });
    boundCg = createTestCgroup('attach-b', { memoryLimitBytes: 160n * MIB });
    daemon = await startDaemon({ args: ['--attach', attachedCg.key, '--attach-interval-ms', '300'] });
    attached = startContainer(attachedCg, { mountpoint: null }, 'sleep 600');
    bound = startContainer(boundCg, { mountpoint: daemon.mountpoint, files: ['/proc/meminfo', '/proc/loadavg'] }, 'sleep 600');
  });

  afterAll(async () => {
    await attached?.stop();
    await bound?.stop();
    await daemon?.cleanup();
    if (daemon) fs.rmSync(daemon.mountpoint.replace(/\/mnt$/, ''), { recursive: true, force: true });
    await attachedCg?.remove();
    await boundCg?.remove();
  });

  it('attaches the container\'s own files, /proc/vmstat included, into a running container', async () => {
    const meminfo = await until('attached meminfo', () => readInside(attached, attachedCg, 'cat /proc/meminfo'), (r) => memTotalKb(r.stdout) === 196608);
    expect(memTotalKb(meminfo.stdout)).toBe(196608);
    // vmstat: free pages within the limit (runc could not have bound this file at creation).
    const vmstat = await readInside(attached, attachedCg, 'cat /proc/vmstat');
    const freePages = Number(/^nr_free_pages (\d+)$/m.exec(vmstat.stdout)?.[1]);
    expect(freePages).toBeGreaterThan(0);
    expect(freePages * 4096).toBeLessThanOrEqual(192 * 1024 * 1024);
    // The mounts are per-container copies (their own inodes), not the shared files.
    const isolfsRoots = isolfsMounts(attached).map(([root]) => root);
    expect(isolfsRoots.some((r) => r.startsWith('/containers/') && r.endsWith('/proc/vmstat'))).toBe(true);
    expect(daemon.logs.some((l) => l.includes('attached isolfs files into a container'))).toBe(true);
  });

  it('does not attach into containers outside the prefix', async () => {
    // (Its namespace, copied from ours by unshare, also holds the whole mount at its mountpoint.)
    const roots = isolfsMounts(bound).map(([root]) => root).filter((r) => r !== '/');
    expect(roots.sort()).toEqual(['/proc/loadavg', '/proc/meminfo']);
    expect(memTotalKb((await readInside(bound, boundCg, 'cat /proc/meminfo')).stdout)).toBe(163840);
  });

  it('repairs every container\'s mounts after kill -9 and a restart, without restarting them', async () => {
    const pids = [attached.process.pid, bound.process.pid];
    await daemon.kill9();
    const dead = await readInside(bound, boundCg, 'cat /proc/meminfo');
    expect(dead.code).not.toBe(0);
    expect(dead.stderr).toMatch(/Transport endpoint is not connected/);

    const started = Date.now();
    daemon = await startDaemon({
      mountpoint: daemon.mountpoint, stateDir: daemon.stateDir,
      args: ['--attach', attachedCg.key, '--attach-interval-ms', '300'],
    });
    const boundAgain = await until('bound meminfo after restart', () => readInside(bound, boundCg, 'cat /proc/meminfo'), (r) => memTotalKb(r.stdout) === 163840);
    const attachedAgain = await until('attached meminfo after restart', () => readInside(attached, attachedCg, 'cat /proc/meminfo; cat /proc/vmstat'), (r) => memTotalKb(r.stdout) === 196608 && /nr_free_pages/.test(r.stdout));
    const repairMs = Date.now() - started;
    expect(memTotalKb(boundAgain.stdout)).toBe(163840);
    expect(memTotalKb(attachedAgain.stdout)).toBe(196608);
    expect(repairMs).toBeLessThan(10_000);
    // Same containers: never restarted.
    expect([attached.process.pid, bound.process.pid]).toEqual(pids);
    expect(attached.process.exitCode).toBeNull();
    // No isolfs mount in either container is left dead: every one reads.
    for (const [c, cg] of [[attached, attachedCg], [bound, boundCg]] as const) {
      const targets = [...new Set(isolfsMounts(c).map(([, mountpoint]) => mountpoint))];
      expect(targets.length).toBeGreaterThanOrEqual(2);
      const check = await readInside(c, cg, `for m in ${targets.join(' ')}; do stat -c %i $m > /dev/null || echo "DEAD $m"; done; echo checked`);
      expect(check.stdout, daemon.logs.filter((l) => l.includes('repair') || l.includes('attach')).join('\n')).toBe('checked\n');
      expect(check.stderr).toBe('');
    }
    expect(daemon.logs.some((l) => l.includes('repaired isolfs mounts in a container'))).toBe(true);
    console.log(`repair after restart took ${repairMs} ms`);
    expect(HOST_MEMTOTAL_KB).toBeGreaterThan(196608);
  });
});
