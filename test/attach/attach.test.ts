/**
 * The attach helper against a real OCI runtime (Debian's runc, busybox rootfs), no daemon:
 * host tmp files stand in for the served files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttachHelperError, attachFiles, checkMounts, defaultAttachHelperPath, detachFiles, type AttachResult } from '../../src/attach/attach';
import { mountStacks, readMountinfo } from '../../src/attach/mountinfo';
import { CGROUP_ROOT, isPureV2, ownCgroups } from '../helpers/cgroups';
import { processExited, RuncError, RUNC_STATE_ROOT, removeStaleContainers, runContainer, runcAvailable, type RuncContainer } from '../helpers/runc';

const HELPER = defaultAttachHelperPath();
const MiB = 1024n * 1024n;

/** Mount points on `target` inside the container, from the host's view of its mountinfo. */
function mountsOn(pid: number, target: string): string[] {
  return fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').filter((l) => l.split(' ')[4] === target);
}

/** The ids of the mounts on `target`, in mountinfo's order (the bottom one first, the top last). */
function mountIdsOn(pid: number, target: string): number[] {
  return mountsOn(pid, target).map((l) => Number(l.split(' ')[0]));
}

/** The ids of the mounts stacked on `target`, topmost first, as the manager reads them (mountStacks). */
function stackIds(pid: number, target: string): number[] {
  return mountStacks(readMountinfo(`/proc/${pid}`) ?? []).get(target)?.map((m) => m.id) ?? [];
}

/**
 * A helper that reads mount ids as on a pre-5.8 kernel (name_to_handle_at, no statx
 * STATX_MNT_ID): the real one, run with its test-only switch.
 */
function handleIdsHelper(dir: string): string {
  const wrapper = path.join(dir, 'isolfs-attach-handle-ids');
  fs.writeFileSync(wrapper, `#!/bin/sh\nISOLFS_ATTACH_TEST_HANDLE_MNT_ID=1 exec '${HELPER}' "$@"\n`, { mode: 0o755 });
  return wrapper;
}

/** One step's outcome with the ids left out (they differ between runs): results, then what is left. */
function outcome(results: readonly AttachResult[], stack: readonly number[]): string {
  const said = results.map((r) => (r.ok ? `ok detached=${r.detachedMounts}` : `err ${r.errno}`));
  return `${said.join(', ')}; ${stack.length} mounted`;
}

function unusedPid(): number {
  const pidMax = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  for (let pid = pidMax - 1; pid > 1; pid--) if (!fs.existsSync(`/proc/${pid}`)) return pid;
  throw new Error('no free pid');
}

describe.skipIf(!runcAvailable())('isolfs-attach in a runc container', () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-attach-test-'));
  const fakeMeminfo = path.join(scratch, 'meminfo');
  const vmstatA = path.join(scratch, 'vmstat-a');
  const vmstatB = path.join(scratch, 'vmstat-b');
  const containers: RuncContainer[] = [];
  let container: RuncContainer;

  beforeAll(async () => {
    expect(fs.existsSync(HELPER), `${HELPER} is not built (npm install / node-gyp)`).toBe(true);
    await removeStaleContainers();
    fs.writeFileSync(fakeMeminfo, 'MemTotal:         262144 kB\nMemFree:          200000 kB\n');
    fs.writeFileSync(vmstatA, 'nr_free_pages 111\npgpgin 1\n');
    fs.writeFileSync(vmstatB, 'nr_free_pages 222\npgpgin 2\n');
    container = await runContainer({
      memoryLimitBytes: 256n * MiB,
      cpuQuotaUs: 50_000,
      cpuPeriodUs: 100_000,
      binds: [{ source: fakeMeminfo, destination: '/proc/meminfo' }],
    });
    containers.push(container);
  });

  afterAll(async () => {
    for (const c of containers) await c.delete();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('runc refuses a bind mount over /proc/vmstat at creation and leaves nothing behind', async () => {
    const attempt = runContainer({ binds: [{ source: vmstatA, destination: '/proc/vmstat' }] });
    await expect(attempt).rejects.toThrow(RuncError);
    await expect(attempt).rejects.toThrow(/\/proc\/vmstat.*cannot be mounted because it is inside \/proc/);
    const state = fs.readdirSync(RUNC_STATE_ROOT);
    expect(state.filter((id) => id.startsWith(`isolfs-test-${process.pid}-`) && id !== container.id)).toEqual([]);
  });

  it.runIf(isPureV2())('puts the container cgroup beneath our own, with the limits asked for (cgroup v2)', () => {
    const dir = container.cgroups().get('')!;
    expect(dir.startsWith(`${path.join(CGROUP_ROOT, ownCgroups().unified)}/`)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'memory.max'), 'utf8').trim()).toBe(String(256n * MiB));
    expect(fs.readFileSync(path.join(dir, 'cpu.max'), 'utf8').trim()).toBe('50000 100000');
  });

  it.skipIf(isPureV2())('puts the container cgroup beneath our own in every controller, with the limits asked for (cgroup v1)', () => {
    const dirs = container.cgroups();
    for (const [controller, ownPath] of ownCgroups().v1) {
      const hierarchy = controller.startsWith('name=') ? controller.slice(5) : controller;
      expect(dirs.get(controller), controller).toBe(path.join(CGROUP_ROOT, hierarchy, ownPath, container.cgroupsPath));
    }
    expect(fs.readFileSync(path.join(dirs.get('memory')!, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(256n * MiB));
    expect(fs.readFileSync(path.join(dirs.get('cpu')!, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('50000');
    expect(fs.readFileSync(path.join(dirs.get('cpu')!, 'cpu.cfs_period_us'), 'utf8').trim()).toBe('100000');
  });

  it('shows a file bound over /proc/meminfo at creation', async () => {
    const result = await container.exec(['cat', '/proc/meminfo']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(fs.readFileSync(fakeMeminfo, 'utf8'));
  });

  it('attaches a host file over /proc/vmstat in the running container, invisible to the host', async () => {
    const before = await container.exec(['cat', '/proc/vmstat']);
    expect(before.stdout).toMatch(/^nr_free_pages \d+\n/);
    expect(before.stdout).not.toBe(fs.readFileSync(vmstatA, 'utf8'));

    const results = await attachFiles(HELPER, container.pid, [{ source: vmstatA, target: '/proc/vmstat', detachMountIds: [] }]);
    expect(results).toEqual([{ target: '/proc/vmstat', ok: true, detachedMounts: 0 }]);
    expect((await container.exec(['cat', '/proc/vmstat'])).stdout).toBe('nr_free_pages 111\npgpgin 1\n');
    expect(mountsOn(container.pid, '/proc/vmstat')).toHaveLength(1);
    // The host's own /proc/vmstat is untouched.
    expect(mountsOn(process.pid, '/proc/vmstat')).toHaveLength(0);
    expect(fs.readFileSync('/proc/vmstat', 'utf8')).toMatch(/^nr_free_pages \d+\n/);
  });

  it('--check reports live, not-mounted and absent targets', async () => {
    const states = await checkMounts(HELPER, container.pid, ['/proc/vmstat', '/proc/meminfo', '/proc/stat', '/proc/no-such-file']);
    expect([...states]).toEqual([
      ['/proc/vmstat', 'live'],
      ['/proc/meminfo', 'live'],
      ['/proc/stat', 'not-mounted'],
      ['/proc/no-such-file', 'absent'],
    ]);
  });

  it('stacks a new mount when nothing is named; detaches exactly the named mounts', async () => {
    const stacked = await attachFiles(HELPER, container.pid, [{ source: vmstatB, target: '/proc/vmstat', detachMountIds: [] }]);
    expect(stacked[0]).toMatchObject({ ok: true, detachedMounts: 0 });
    const ids = mountIdsOn(container.pid, '/proc/vmstat');
    expect(ids).toHaveLength(2);

    fs.writeFileSync(vmstatB, 'nr_free_pages 333\npgpgin 3\n');
    const replaced = await attachFiles(HELPER, container.pid, [{ source: vmstatB, target: '/proc/vmstat', detachMountIds: ids }]);
    expect(replaced).toEqual([{ target: '/proc/vmstat', ok: true, detachedMounts: 2 }]);
    const after = mountIdsOn(container.pid, '/proc/vmstat');
    expect(after).toHaveLength(1);
    expect(ids).not.toContain(after[0]);
    expect((await container.exec(['cat', '/proc/vmstat'])).stdout).toBe('nr_free_pages 333\npgpgin 3\n');
  });

  it('never detaches an unnamed mount: one on top stops it, with a named one beneath left too', async () => {
    // /proc/meminfo holds runc's bind; a file of ours goes on it, unnamed.
    const [runcBind] = mountIdsOn(container.pid, '/proc/meminfo');
    const ours = path.join(scratch, 'meminfo-ours');
    fs.writeFileSync(ours, 'MemTotal: 1 kB\n');
    expect((await attachFiles(HELPER, container.pid, [{ source: ours, target: '/proc/meminfo', detachMountIds: [] }]))[0]).toMatchObject({ ok: true, detachedMounts: 0 });
    const [, unnamedTop] = mountIdsOn(container.pid, '/proc/meminfo');
    // Naming only runc's bind (beneath) and an id that is nowhere: the unnamed top stops it.
    fs.writeFileSync(ours, 'MemTotal: 2 kB\n');
    const [stopped] = await attachFiles(HELPER, container.pid, [{ source: ours, target: '/proc/meminfo', detachMountIds: [runcBind, 0x7fffffff] }]);
    expect(stopped).toEqual({ target: '/proc/meminfo', ok: true, detachedMounts: 0 });
    const three = mountIdsOn(container.pid, '/proc/meminfo');
    expect(three.slice(0, 2)).toEqual([runcBind, unnamedTop]);
    expect(three).toHaveLength(3);
    expect((await container.exec(['cat', '/proc/meminfo'])).stdout).toBe('MemTotal: 2 kB\n');
    // Naming our two: both go, runc's bind stays beneath the new one.
    const [cleaned] = await attachFiles(HELPER, container.pid, [{ source: ours, target: '/proc/meminfo', detachMountIds: [three[2], unnamedTop] }]);
    expect(cleaned).toEqual({ target: '/proc/meminfo', ok: true, detachedMounts: 2 });
    expect(mountIdsOn(container.pid, '/proc/meminfo')[0]).toBe(runcBind);
    expect(mountIdsOn(container.pid, '/proc/meminfo')).toHaveLength(2);
    // Detaching ours (named, its id from mountinfo) uncovers runc's bind again.
    const [top] = stackIds(container.pid, '/proc/meminfo');
    expect(await detachFiles(HELPER, container.pid, [{ target: '/proc/meminfo', detachMountIds: [top] }])).toEqual([{ target: '/proc/meminfo', ok: true, detachedMounts: 1 }]);
    expect(mountIdsOn(container.pid, '/proc/meminfo')).toEqual([runcBind]);
    expect((await container.exec(['cat', '/proc/meminfo'])).stdout).toBe(fs.readFileSync(fakeMeminfo, 'utf8'));
  });

  it('refuses mount ids that are not positive integers, before running anything', async () => {
    for (const detachMountIds of [[0], [-1], [1.5], [2 ** 31], Array.from({ length: 17 }, (_, i) => i + 1)]) {
      const attempt = attachFiles(HELPER, container.pid, [{ source: vmstatA, target: '/proc/vmstat', detachMountIds }]);
      await expect(attempt).rejects.toMatchObject({ errno: 'EINVAL', exitCode: null });
    }
  });

  it('read-only attach refuses writes from inside the container', async () => {
    const writable = path.join(scratch, 'loadavg');
    fs.writeFileSync(writable, '0.00 0.00 0.00 1/1 1\n');
    const [result] = await attachFiles(HELPER, container.pid, [{ source: writable, target: '/proc/loadavg', detachMountIds: [] }], { readOnly: true });
    expect(result).toMatchObject({ ok: true });
    expect(mountsOn(container.pid, '/proc/loadavg')[0]).toMatch(/ \/proc\/loadavg ro[, ]/);
    const write = await container.exec(['sh', '-c', 'echo overwritten > /proc/loadavg']);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/Read-only file system/);
    expect(fs.readFileSync(writable, 'utf8')).toBe('0.00 0.00 0.00 1/1 1\n');
  });

  it('fails a pair whose target does not exist without creating it, and still does the others', async () => {
    const results = await attachFiles(HELPER, container.pid, [
      { source: vmstatA, target: '/proc/isolfs-no-such-file', detachMountIds: [] },
      { source: path.join(scratch, 'no-such-source'), target: '/proc/uptime', detachMountIds: [] },
      { source: vmstatA, target: '/proc/swaps', detachMountIds: [] },
    ]);
    expect(results[0]).toMatchObject({ ok: false, errno: 'ENOENT', message: expect.stringMatching(/does not exist in the container/) });
    expect(results[1]).toMatchObject({ ok: false, errno: 'ENOENT', message: expect.stringMatching(/cannot clone source/) });
    expect(results[2]).toMatchObject({ ok: true });
    expect((await checkMounts(HELPER, container.pid, ['/proc/isolfs-no-such-file'])).get('/proc/isolfs-no-such-file')).toBe('absent');
    expect((await container.exec(['cat', '/proc/swaps'])).stdout).toBe(fs.readFileSync(vmstatA, 'utf8'));
  });

  it('unmount detaches only named mounts: an unnamed top stays, a target with nothing mounted is left as it is', async () => {
    const [top] = stackIds(container.pid, '/proc/vmstat');
    const unnamed = await detachFiles(HELPER, container.pid, [
      { target: '/proc/vmstat', detachMountIds: [0x7fffffff] },
      { target: '/proc/stat', detachMountIds: [] },
    ]);
    expect(unnamed).toEqual([{ target: '/proc/vmstat', ok: true, detachedMounts: 0 }, { target: '/proc/stat', ok: true, detachedMounts: 0 }]);
    expect(stackIds(container.pid, '/proc/vmstat')).toEqual([top]);
    expect(await detachFiles(HELPER, container.pid, [{ target: '/proc/vmstat', detachMountIds: [top] }])).toEqual([{ target: '/proc/vmstat', ok: true, detachedMounts: 1 }]);
    expect((await container.exec(['cat', '/proc/vmstat'])).stdout).toMatch(/^nr_free_pages \d+\n/);
    expect((await checkMounts(HELPER, container.pid, ['/proc/vmstat'])).get('/proc/vmstat')).toBe('not-mounted');
    await expect(detachFiles(HELPER, container.pid, [{ target: '/proc/vmstat', detachMountIds: [0] }])).rejects.toMatchObject({ errno: 'EINVAL', exitCode: null });
  });

  it('reads mount ids through name_to_handle_at where statx cannot (pre-5.8 kernels): named and unnamed mounts go exactly as with statx', async () => {
    const handleIds = handleIdsHelper(scratch);
    /** Stacks, replaces and detaches on `target` with `helper`; what each step did, ids left out. */
    const steps = async (helper: string, target: string): Promise<string[]> => {
      const files = [1, 2].map((n) => {
        const file = path.join(scratch, `stack-${path.basename(target)}-${n}`);
        fs.writeFileSync(file, `file ${n}\n`);
        return file;
      });
      const attach = (source: string, detachMountIds: number[]): Promise<AttachResult[]> => attachFiles(helper, container.pid, [{ source, target, detachMountIds }]);
      const detach = (detachMountIds: number[]): Promise<AttachResult[]> => detachFiles(helper, container.pid, [{ target, detachMountIds }]);
      const seen: string[] = [];
      const step = async (running: Promise<AttachResult[]>): Promise<number[]> => {
        const results = await running;
        const stack = stackIds(container.pid, target);
        seen.push(outcome(results, stack));
        return stack;
      };
      const [a] = await step(attach(files[0], []));
      const [b] = await step(attach(files[1], []));
      // Named: the one beneath and one that is nowhere; the unnamed top stops it.
      const [c] = await step(attach(files[0], [a, 0x7fffffff]));
      seen.push((await container.exec(['cat', target])).stdout);
      const [d] = await step(attach(files[1], [c, b]));
      seen.push((await container.exec(['cat', target])).stdout);
      await step(detach([a]));
      await step(detach([d, a]));
      await step(detach([d]));
      return seen;
    };
    const expected = [
      'ok detached=0; 1 mounted', 'ok detached=0; 2 mounted', 'ok detached=0; 3 mounted', 'file 1\n',
      'ok detached=2; 2 mounted', 'file 2\n', 'ok detached=0; 2 mounted', 'ok detached=2; 0 mounted', 'ok detached=0; 0 mounted',
    ];
    expect(await steps(HELPER, '/proc/cpuinfo')).toEqual(expected);
    expect(await steps(handleIds, '/proc/partitions')).toEqual(expected);
  });

  it('a top mount whose id neither statx (switched off) nor name_to_handle_at can read is not detached: the item fails saying so', async () => {
    const handleIds = handleIdsHelper(scratch);
    // A bind of a host procfs file: procfs has no file handles, so name_to_handle_at cannot say.
    expect((await attachFiles(HELPER, container.pid, [{ source: '/proc/version', target: '/proc/cmdline', detachMountIds: [] }]))[0]).toMatchObject({ ok: true });
    const [procBind] = stackIds(container.pid, '/proc/cmdline');
    const [refused] = await attachFiles(handleIds, container.pid, [{ source: vmstatA, target: '/proc/cmdline', detachMountIds: [procBind] }]);
    expect(refused).toMatchObject({ ok: false, errno: 'EOPNOTSUPP', message: expect.stringMatching(/cannot read the top mount's id .*not detached/) });
    const [unmountRefused] = await detachFiles(handleIds, container.pid, [{ target: '/proc/cmdline', detachMountIds: [procBind] }]);
    expect(unmountRefused).toMatchObject({ ok: false, errno: 'EOPNOTSUPP' });
    expect(stackIds(container.pid, '/proc/cmdline')).toEqual([procBind]);
    // With statx, the same request detaches it.
    expect(await detachFiles(HELPER, container.pid, [{ target: '/proc/cmdline', detachMountIds: [procBind] }])).toEqual([{ target: '/proc/cmdline', ok: true, detachedMounts: 1 }]);
    expect(stackIds(container.pid, '/proc/cmdline')).toEqual([]);
  });

  it('a pid that does not exist is a clear ESRCH error, not a crash', async () => {
    const pid = unusedPid();
    const attempt = attachFiles(HELPER, pid, [{ source: vmstatA, target: '/proc/vmstat', detachMountIds: [] }]);
    await expect(attempt).rejects.toBeInstanceOf(AttachHelperError);
    await expect(attempt).rejects.toMatchObject({ exitCode: 3, errno: 'ESRCH', message: expect.stringMatching(new RegExp(`pid ${pid}`)) });
    await expect(checkMounts(HELPER, pid, ['/proc/vmstat'])).rejects.toMatchObject({ errno: 'ESRCH' });
  });

  it('rejects targets the helper could not report on unambiguously', async () => {
    await expect(attachFiles(HELPER, container.pid, [{ source: vmstatA, target: 'proc/vmstat', detachMountIds: [] }])).rejects.toMatchObject({ errno: 'EINVAL' });
    await expect(checkMounts(HELPER, container.pid, ['/proc/a b'])).rejects.toMatchObject({ errno: 'EINVAL' });
  });

  describe.skipIf(!fs.existsSync('/usr/bin/lxcfs'))('a dead FUSE mount (lxcfs killed with SIGKILL)', () => {
    const fuseDir = path.join(scratch, 'lxcfs');
    let lxcfs: ChildProcess | null = null;

    beforeAll(async () => {
      fs.mkdirSync(fuseDir);
      lxcfs = spawn('lxcfs', ['-f', '-p', path.join(scratch, 'lxcfs.pid'), fuseDir], { stdio: 'ignore' });
      const deadline = Date.now() + 10_000;
      while (!fs.existsSync(path.join(fuseDir, 'proc', 'uptime'))) {
        if (Date.now() > deadline || lxcfs.exitCode !== null) throw new Error('lxcfs did not start');
        await new Promise((r) => setTimeout(r, 50));
      }
    });

    afterAll(async () => {
      if (lxcfs && lxcfs.exitCode === null && lxcfs.signalCode === null) {
        const exited = new Promise((r) => lxcfs!.once('exit', r));
        lxcfs.kill('SIGKILL');
        await exited;
      }
      // Our own host mount of the (dead) lxcfs: detach it before the scratch dir is removed.
      if (mountsOn(process.pid, fuseDir).length > 0) await umountLazy(fuseDir);
      expect(mountsOn(process.pid, fuseDir)).toEqual([]);
    });

    it('a live foreign FUSE mount stays when not named; dead, it is replaced only once named', async () => {
      const [attached] = await attachFiles(HELPER, container.pid, [{ source: path.join(fuseDir, 'proc', 'uptime'), target: '/proc/uptime', detachMountIds: [] }]);
      expect(attached).toMatchObject({ ok: true });
      expect((await checkMounts(HELPER, container.pid, ['/proc/uptime'])).get('/proc/uptime')).toBe('live');
      expect((await container.exec(['cat', '/proc/uptime'])).stdout).toMatch(/^\d+\.\d+ \d+\.\d+\n$/);
      const [lxcfsMount] = mountIdsOn(container.pid, '/proc/uptime');

      // Ours over the live lxcfs mount, naming nothing: it stays beneath.
      const uptime = path.join(scratch, 'uptime');
      fs.writeFileSync(uptime, '12.00 3.00\n');
      const [over] = await attachFiles(HELPER, container.pid, [{ source: uptime, target: '/proc/uptime', detachMountIds: [] }]);
      expect(over).toEqual({ target: '/proc/uptime', ok: true, detachedMounts: 0 });
      expect(mountIdsOn(container.pid, '/proc/uptime')[0]).toBe(lxcfsMount);
      expect(mountIdsOn(container.pid, '/proc/uptime')).toHaveLength(2);
      const [ours] = stackIds(container.pid, '/proc/uptime');
      expect(await detachFiles(HELPER, container.pid, [{ target: '/proc/uptime', detachMountIds: [ours] }])).toEqual([{ target: '/proc/uptime', ok: true, detachedMounts: 1 }]);
      expect(mountIdsOn(container.pid, '/proc/uptime')).toEqual([lxcfsMount]);
      // A second lxcfs file, to be repaired through name_to_handle_at once lxcfs is dead.
      const [diskstats] = await attachFiles(HELPER, container.pid, [{ source: path.join(fuseDir, 'proc', 'diskstats'), target: '/proc/diskstats', detachMountIds: [] }]);
      expect(diskstats).toMatchObject({ ok: true });
      const [lxcfsDiskstats] = stackIds(container.pid, '/proc/diskstats');

      const exited = new Promise((r) => lxcfs!.once('exit', r));
      lxcfs!.kill('SIGKILL');
      await exited;

      expect((await checkMounts(HELPER, container.pid, ['/proc/uptime'])).get('/proc/uptime')).toBe('dead');
      const broken = await container.exec(['cat', '/proc/uptime']);
      expect(broken.code).not.toBe(0);
      expect(broken.stderr).toMatch(/Transport endpoint is not connected/);

      // Not named, the dead mount stays and the helper refuses to stack on it, saying why.
      const [refused] = await attachFiles(HELPER, container.pid, [{ source: vmstatA, target: '/proc/uptime', detachMountIds: [] }]);
      expect(refused).toMatchObject({ ok: false, errno: 'ENOTCONN', message: expect.stringMatching(/not named/) });
      expect(mountIdsOn(container.pid, '/proc/uptime')).toEqual([lxcfsMount]);

      // Named (its id read from the container's mountinfo, as the manager does), it is replaced.
      const [repaired] = await attachFiles(HELPER, container.pid, [{ source: uptime, target: '/proc/uptime', detachMountIds: [lxcfsMount] }]);
      expect(repaired).toEqual({ target: '/proc/uptime', ok: true, detachedMounts: 1 });
      expect((await container.exec(['cat', '/proc/uptime'])).stdout).toBe('12.00 3.00\n');
      expect(mountIdsOn(container.pid, '/proc/uptime')).toHaveLength(1);
      expect(mountIdsOn(container.pid, '/proc/uptime')).not.toContain(lxcfsMount);

      // The same through name_to_handle_at (pre-5.8 kernels): a dead FUSE mount's id is read
      // without asking its daemon.
      expect((await checkMounts(HELPER, container.pid, ['/proc/diskstats'])).get('/proc/diskstats')).toBe('dead');
      const [viaHandle] = await attachFiles(handleIdsHelper(scratch), container.pid, [{ source: vmstatA, target: '/proc/diskstats', detachMountIds: [lxcfsDiskstats] }]);
      expect(viaHandle).toEqual({ target: '/proc/diskstats', ok: true, detachedMounts: 1 });
      expect(stackIds(container.pid, '/proc/diskstats')).toHaveLength(1);
      expect(stackIds(container.pid, '/proc/diskstats')).not.toContain(lxcfsDiskstats);
      expect((await container.exec(['cat', '/proc/diskstats'])).stdout).toBe(fs.readFileSync(vmstatA, 'utf8'));
    });
  });

  it('kill stops the container and delete removes it, its runc state and its cgroups', async () => {
    const extra = await runContainer({ memoryLimitBytes: 64n * MiB });
    containers.push(extra);
    const dirs = [...extra.cgroups().values()];
    expect(dirs.every((d) => fs.existsSync(d))).toBe(true);
    expect(await extra.exec(['sh', '-c', 'echo out; echo err >&2; exit 7'])).toEqual({ stdout: 'out\n', stderr: 'err\n', code: 7 });
    await extra.kill();
    const deadline = Date.now() + 5000;
    while (!processExited(extra.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(processExited(extra.pid)).toBe(true);
    await extra.delete();
    expect(processExited(extra.pid)).toBe(true);
    expect(fs.readdirSync(RUNC_STATE_ROOT)).not.toContain(extra.id);
    expect(dirs.filter((d) => fs.existsSync(d))).toEqual([]);
    expect(fs.existsSync(extra.bundleDir)).toBe(false);
  });
});

function umountLazy(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('umount', ['-l', dir], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', () => resolve());
  });
}
