/**
 * --attach and repair on the real mount, with "containers" made of a cgroup beneath ours and
 * their own mount and pid namespaces:
 *
 * - attached: binds nothing; the daemon attaches its own copies, /proc/vmstat included, and the
 *   control files (its /proc/sys/kernel is a tmpfs with placeholder files, standing in for a
 *   kernel that has them).
 * - long: a cgroup path too long to percent-encode into one name (the hashed directory name).
 * - bound: binds the shared files at creation (hostPath style), outside the attach prefixes.
 * - foreign: binds files of a second, live isolfs daemon: ours must leave those alone.
 * - pivoting: gets attached while it still has the host's root, then switches to a busybox root
 *   with pivot_root, as runc's init does (the attach is thrown away with the old root).
 *
 * Then the daemon is killed with SIGKILL and started again: every container's mounts come back
 * to life without the containers being restarted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../helpers/procText';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { startContainer, type RunningContainer } from '../helpers/container';
import { containerDirName, mountSourceName } from '../../src/fuse/filesystem';
import { ensureRootfs } from '../helpers/runc';
import { defaultAttachHelperPath, detachFiles } from '../../src/attach/attach';
import { mountStacks, readMountinfo } from '../../src/attach/mountinfo';

const MIB = 1024n * 1024n;
const HOST_MEMTOTAL_KB = Number(/MemTotal:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1]);

/** Runs `cmd` in the container's mount namespace, from its cgroup (as its own processes do). */
function readInside(container: RunningContainer, cgroup: TestCgroup | null, cmd: string): Promise<{ stdout: string; stderr: string; code: number }> {
  const pid = container.process.pid;
  const join = cgroup ? cgroup.procsFiles.map((f) => `echo $$ > ${f}`).join('; ') : ':';
  return new Promise((resolve) => {
    execFile('bash', ['-c', `${join}; exec nsenter -t ${pid} -m sh -c '${cmd}'`], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? (typeof err.code === 'number' ? err.code : 1) : 0 });
    });
  });
}

interface SeenMount {
  root: string;
  mountpoint: string;
  device: string;
  /** mountSourceName() of the mountpoint the file system was made for. */
  source: string;
}

/** The fuse.isolfs mounts of the container's namespace, from the host's view of its mountinfo. */
function isolfsMounts(container: RunningContainer): SeenMount[] {
  const text = fs.readFileSync(`/proc/${container.process.pid}/mountinfo`, 'utf8');
  return text.split('\n').filter((l) => l.includes(' - fuse.isolfs ')).map((l) => {
    const f = l.split(' ');
    return { root: f[3], mountpoint: f[4], device: f[2], source: l.split(' - ')[1].split(' ')[1] };
  });
}

/** The topmost isolfs mount on `target` (the last one listed on that mountpoint). */
function mountOn(container: RunningContainer, target: string): SeenMount | undefined {
  return isolfsMounts(container).filter((m) => m.mountpoint === target).pop();
}

/** "major:minor" of a daemon's mount, from our mountinfo (the daemons share our namespace). */
function deviceOf(mountpoint: string): string {
  const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .find((l) => l.split(' ')[4] === mountpoint && l.split(' ')[3] === '/' && l.includes(' - fuse.isolfs '));
  if (!line) throw new Error(`${mountpoint} is not mounted`);
  return line.split(' ')[2];
}

function memTotalKb(text: string): number | null {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) : null;
}

const CONTROL_PLACEHOLDERS = 'mount -t tmpfs isolfs-test /proc/sys/kernel; '
  + 'touch /proc/sys/kernel/stats_isolated /proc/sys/kernel/container_stats_isolated; exec sleep 600';

describe('--attach and repair after kill -9', () => {
  let daemon: DaemonHandle;
  let other: DaemonHandle; // a second isolfs, alive throughout
  let attachedCg: TestCgroup; // 192 MiB, nothing bound at creation
  let longCg: TestCgroup; // 176 MiB, a key longer than a directory name once encoded
  let boundCg: TestCgroup; // 160 MiB, shared files bound at creation
  let attached: RunningContainer;
  let long: RunningContainer;
  let bound: RunningContainer;
  let foreign: RunningContainer;
  let pivotCg: TestCgroup; // 144 MiB
  let pivoting: RunningContainer;
  let pivotDir: string;
  let daemonArgs: string[];
  /** A cgroup path that a second container gets after the first one's cgroup was removed. */
  let reusedCg: TestCgroup;
  let reused: RunningContainer | undefined;

  beforeAll(async () => {
    attachedCg = createTestCgroup('attach-a', { memoryLimitBytes: 192n * MIB });
    // 220 + the helper's prefix and pid stays within NAME_MAX (255) for the cgroup directory, yet
    // its key (at least two '/' encoded as %2F) is longer than 255 wherever the tests' cgroup is.
    longCg = createTestCgroup(`attach-long-${'l'.repeat(220)}`, { memoryLimitBytes: 176n * MIB });
    boundCg = createTestCgroup('attach-b', { memoryLimitBytes: 160n * MIB });
    pivotCg = createTestCgroup('attach-p', { memoryLimitBytes: 144n * MIB });
    reusedCg = createTestCgroup('attach-r', { memoryLimitBytes: 128n * MIB });
    daemonArgs = [
      '--attach', attachedCg.key, '--attach', longCg.key, '--attach', pivotCg.key, '--attach', reusedCg.key, '--attach-interval-ms', '300',
    ];
    daemon = await startDaemon({ args: daemonArgs });
    // --no-repair: when ours is killed below, this one must not be the one that repairs.
    other = await startDaemon({ args: ['--no-repair'] });
    attached = startContainer(attachedCg, { mountpoint: null }, CONTROL_PLACEHOLDERS);
    long = startContainer(longCg, { mountpoint: null }, 'sleep 600');
    bound = startContainer(boundCg, { mountpoint: daemon.mountpoint, files: ['/proc/meminfo', '/proc/loadavg'] }, 'sleep 600');
    foreign = startContainer(null, { mountpoint: other.mountpoint, files: ['/proc/meminfo'] }, 'sleep 600');
    pivotDir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-pivot-'));
    fs.mkdirSync(path.join(pivotDir, 'root'));
    // Waits for the test's go, then does what runc's init does once its mounts are prepared.
    const newRoot = path.join(pivotDir, 'root');
    pivoting = startContainer(pivotCg, { mountpoint: null }, [
      `while [ ! -e ${pivotDir}/go ]; do sleep 0.05; done`,
      `mount --bind -o ro ${ensureRootfs()} ${newRoot}`,
      `mount -t proc proc ${newRoot}/proc`,
      `mount -t sysfs sysfs ${newRoot}/sys`,
      `cd ${newRoot} && pivot_root . . && umount -l .`,
      'exec /bin/sleep 600',
    ].join('\n'));
  });

  afterAll(async () => {
    for (const c of [attached, long, bound, foreign, pivoting]) await c?.stop();
    if (pivotDir) fs.rmSync(pivotDir, { recursive: true, force: true });
    for (const d of [daemon, other]) {
      await d?.cleanup();
      if (d) fs.rmSync(path.dirname(d.mountpoint), { recursive: true, force: true });
    }
    await reused?.stop();
    for (const cg of [attachedCg, longCg, boundCg, pivotCg, reusedCg]) await cg?.remove();
  });

  it('attaches the container\'s own files, /proc/vmstat and existing control files included', async () => {
    const meminfo = await until('attached meminfo', () => readInside(attached, attachedCg, 'cat /proc/meminfo'), (r) => memTotalKb(r.stdout) === 196608);
    expect(memTotalKb(meminfo.stdout)).toBe(196608);
    // vmstat: free pages within the limit (runc could not have bound this file at creation).
    const vmstat = await readInside(attached, attachedCg, 'cat /proc/vmstat');
    const freePages = Number(/^nr_free_pages (\d+)$/m.exec(vmstat.stdout)?.[1]);
    expect(freePages).toBeGreaterThan(0);
    expect(freePages * 4096).toBeLessThanOrEqual(192 * 1024 * 1024);
    // The mounts are per-container copies (their own inodes), not the shared files.
    const dir = `/containers/${encodeURIComponent(attachedCg.key)}`;
    expect(mountOn(attached, '/proc/vmstat')?.root).toBe(`${dir}/proc/vmstat`);
    // Views come from the container-views tree (page cache), control files from the main one.
    expect(mountOn(attached, '/proc/vmstat')?.device).toBe(deviceOf(daemon.viewsMountpoint));
    // The placeholders were empty: "1" comes from isolfs.
    const control = await until('control file attached', () => readInside(attached, attachedCg, 'cat /proc/sys/kernel/container_stats_isolated'), (r) => r.stdout === '1\n');
    expect(control.stdout).toBe('1\n');
    expect(mountOn(attached, '/proc/sys/kernel/stats_isolated')?.root).toBe(`${dir}/proc/sys/kernel/stats_isolated`);
    expect(mountOn(attached, '/proc/sys/kernel/stats_isolated')?.device).toBe(deviceOf(daemon.mountpoint));
    expect(daemon.logs.some((l) => l.includes('attached isolfs files into a container'))).toBe(true);
  });

  it('gives a cgroup path too long to encode a hashed directory and still attaches it', async () => {
    expect(Buffer.byteLength(encodeURIComponent(longCg.key))).toBeGreaterThan(255);
    const name = containerDirName(longCg.key);
    expect(name).toMatch(/^sha256-[0-9a-f]{64}$/);
    const meminfo = await until('long meminfo', () => readInside(long, longCg, 'cat /proc/meminfo'), (r) => memTotalKb(r.stdout) === 180224);
    expect(memTotalKb(meminfo.stdout)).toBe(180224);
    expect(mountOn(long, '/proc/meminfo')?.root).toBe(`/containers/${name}/proc/meminfo`);
    // No placeholder control files here: nothing to bind over, nothing created.
    expect(isolfsMounts(long).some((m) => m.mountpoint.startsWith('/proc/sys/'))).toBe(false);
  });

  it('serves <views>/containers/<key>/ with that container\'s content, whoever reads, one inode per file', async () => {
    const containers = path.join(daemon.viewsMountpoint, 'containers');
    // The main tree has the same subtrees, with the control files only.
    expect(fs.readdirSync(path.join(daemon.mountpoint, 'containers'))).toContain(encodeURIComponent(attachedCg.key));
    expect(fs.existsSync(path.join(daemon.mountpoint, 'containers', encodeURIComponent(attachedCg.key), 'proc', 'meminfo'))).toBe(false);
    const names = fs.readdirSync(containers);
    expect(names).toContain(encodeURIComponent(attachedCg.key));
    expect(names).toContain(containerDirName(longCg.key));
    expect(names).not.toContain(encodeURIComponent(boundCg.key)); // outside the prefixes
    const file = path.join(containers, encodeURIComponent(attachedCg.key), 'proc', 'meminfo');
    // The host (this test process) reads the attached container's view...
    expect(memTotalKb(await fs.promises.readFile(file, 'utf8'))).toBe(196608);
    // ...and so does a process of another container (160 MiB) that can see the mount.
    const fromBound = await readInside(bound, boundCg, `cat ${file}`);
    expect(memTotalKb(fromBound.stdout)).toBe(196608);
    // Unknown keys do not exist.
    await expect(fs.promises.readFile(path.join(containers, encodeURIComponent('/no/such/cgroup'), 'proc', 'meminfo'))).rejects.toThrow(/ENOENT/);
    // Every copy is its own inode.
    const inodes = [
      path.join(daemon.mountpoint, 'proc', 'meminfo'), file,
      path.join(containers, containerDirName(longCg.key), 'proc', 'meminfo'),
    ].map((p) => { const st = fs.statSync(p); return `${st.dev}:${st.ino}`; });
    expect(new Set(inodes).size).toBe(3);
    // Nobody writes the page-cache tree, root included: read-only, modes checked by the kernel.
    await expect(fs.promises.writeFile(file, 'x')).rejects.toThrow(/EROFS|EACCES/);
  });

  it('applies the switches to the per-container copies: opted out or host switch off give host files', async () => {
    const ownView = async () => memTotalKb((await readInside(attached, attachedCg, 'cat /proc/meminfo')).stdout);
    const hostSide = path.join(daemon.viewsMountpoint, 'containers', encodeURIComponent(attachedCg.key), 'proc', 'meminfo');
    // The container opts out from inside, through its attached control file: its mounts stay and
    // it reads the host's numbers through them.
    const optOut = await readInside(attached, attachedCg, 'echo 0 > /proc/sys/kernel/container_stats_isolated && cat /proc/sys/kernel/container_stats_isolated');
    expect(optOut.stdout).toBe('0\n');
    expect(await ownView()).toBe(HOST_MEMTOTAL_KB);
    expect(memTotalKb(await fs.promises.readFile(hostSide, 'utf8'))).toBe(HOST_MEMTOTAL_KB);
    expect(mountOn(attached, '/proc/meminfo')).toBeDefined();
    await readInside(attached, attachedCg, 'echo 1 > /proc/sys/kernel/container_stats_isolated');
    expect(await ownView()).toBe(196608);
    // Host switch off: everyone gets the host's files, the per-container copies included.
    const hostSwitch = path.join(daemon.mountpoint, 'proc', 'sys', 'kernel', 'stats_isolated');
    await fs.promises.writeFile(hostSwitch, '0');
    try {
      expect(await ownView()).toBe(HOST_MEMTOTAL_KB);
      expect(memTotalKb(await fs.promises.readFile(hostSide, 'utf8'))).toBe(HOST_MEMTOTAL_KB);
    } finally {
      await fs.promises.writeFile(hostSwitch, '1');
    }
    expect(await ownView()).toBe(196608);
  });

  it('refuses a write to a container\'s switch from outside it (EPERM + log), allows one from inside', async () => {
    const copy = path.join(daemon.mountpoint, 'containers', encodeURIComponent(attachedCg.key), 'proc/sys/kernel/container_stats_isolated');
    // Root in another cgroup, in that container's mount and pid namespaces (nsenter -p forks into it).
    const pid = bound.process.pid as number;
    const fromOther = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
      const join = boundCg.procsFiles.map((f) => `echo $$ > ${f}`).join('; ');
      execFile('bash', ['-c', `${join}; exec nsenter -t ${pid} -m -p bash -c 'echo 0 > ${copy}; echo rc=$?; readlink /proc/self/ns/pid'`],
        { timeout: 20_000 }, (_err, stdout, stderr) => resolve({ stdout, stderr }));
    });
    expect(fromOther.stdout).toMatch(/^rc=[1-9]/);
    expect(fromOther.stderr).toMatch(/Operation not permitted/);
    expect(fromOther.stdout).not.toContain(fs.readlinkSync('/proc/self/ns/pid')); // really another pid namespace
    // Host root (this test process, outside the container's cgroup) is refused the same way.
    await expect(fs.promises.writeFile(copy, '0')).rejects.toThrow(/EPERM/);
    // (refusals are logged once a minute per writer and reason: look for the other cgroup's)
    expect(daemon.logs.some((l) => l.includes('control write refused') && l.includes(attachedCg.key) && l.includes(boundCg.key))).toBe(true);
    // The container still reads its own view and its switch is still 1.
    expect(memTotalKb((await readInside(attached, attachedCg, 'cat /proc/meminfo')).stdout)).toBe(196608);
    expect(fs.readFileSync(copy, 'utf8')).toBe('1\n');
    // From inside (its cgroup, through its attached file): allowed.
    const inside = await readInside(attached, attachedCg, 'echo 0 > /proc/sys/kernel/container_stats_isolated; echo rc=$?; echo 1 > /proc/sys/kernel/container_stats_isolated');
    expect(inside.stdout).toBe('rc=0\n');
    expect(daemon.logs.filter((l) => l.includes('kernel.container_stats_isolated changed') && l.includes(attachedCg.key)).length).toBeGreaterThanOrEqual(2);
    expect(fs.readFileSync(copy, 'utf8')).toBe('1\n');
  });

  it('does not attach into containers outside the prefix, nor touch another live isolfs\'s mounts', async () => {
    // (Its namespace, copied from ours by unshare, also holds the whole mount at its mountpoint.)
    const roots = isolfsMounts(bound).map((m) => m.root).filter((r) => r !== '/');
    expect(roots.sort((a, b) => a.localeCompare(b))).toEqual(['/proc/loadavg', '/proc/meminfo']);
    expect(memTotalKb((await readInside(bound, boundCg, 'cat /proc/meminfo')).stdout)).toBe(163840);
    // Several scans have looked at the foreign container by now: its mount is the other daemon's.
    await new Promise((r) => setTimeout(r, 1000));
    expect(mountOn(foreign, '/proc/meminfo')?.device).toBe(deviceOf(other.mountpoint));
    expect(daemon.logs.filter((l) => l.includes('repaired isolfs mounts'))).toEqual([]);
  });

  it('attaches again a file whose mount disappeared from a container it had done', async () => {
    const before = mountOn(attached, '/proc/vmstat');
    expect(before?.device).toBe(deviceOf(daemon.viewsMountpoint));
    // Named as the manager names it: the top mount's id, from the container's mountinfo.
    const pid = attached.process.pid as number;
    const top = mountStacks(readMountinfo(`/proc/${pid}`) ?? []).get('/proc/vmstat')?.[0];
    expect(top?.device).toBe(deviceOf(daemon.viewsMountpoint));
    const [result] = await detachFiles(defaultAttachHelperPath(), pid, [{ target: '/proc/vmstat', detachMountIds: [top?.id ?? 0] }]);
    expect(result).toEqual({ target: '/proc/vmstat', ok: true, detachedMounts: 1 });
    expect(mountOn(attached, '/proc/vmstat')).toBeUndefined();
    // Looked at again every 6 scans (300 ms each here).
    const back = await until('vmstat attached again', () => mountOn(attached, '/proc/vmstat'), (m) => m !== undefined, 10_000);
    expect(back?.root).toBe(before?.root);
    expect(back?.device).toBe(before?.device);
  });

  it('attaches again when the container switches to its own root after the attach (runc\'s pivot_root race)', async () => {
    const own = `/containers/${encodeURIComponent(pivotCg.key)}/proc/meminfo`;
    // Attached while the container still has the host's root...
    await until('attached before pivot_root', () => mountOn(pivoting, '/proc/meminfo')?.root, (r) => r === own);
    const before = fs.readFileSync(`/proc/${pivoting.process.pid}/mountinfo`, 'utf8').split('\n')[0];
    fs.writeFileSync(path.join(pivotDir, 'go'), '');
    // ...then pivot_root takes the old root, and those mounts, away: a new root at "/".
    await until('pivot_root done', () => fs.readFileSync(`/proc/${pivoting.process.pid}/mountinfo`, 'utf8').split('\n')[0], (l) => l !== before);
    await until('attached again after pivot_root', () => mountOn(pivoting, '/proc/meminfo')?.root, (r) => r === own, 10_000);
    // The daemon logs "again" once every file is attached in the new root (meminfo comes first).
    await until('attach logged as again', () => daemon.logs.some((l) => l.includes(pivotCg.key) && l.includes('"again":true')), (b) => b, 10_000);
    // Read from inside, with the container's own root (its busybox cat and sh).
    const pid = pivoting.process.pid as number;
    const inside = await new Promise<string>((resolve) => {
      execFile('bash', ['-c', `${pivotCg.procsFiles.map((f) => `echo $$ > ${f}`).join('; ')}; exec nsenter -t ${pid} -m -r /bin/cat /proc/meminfo /proc/vmstat`],
        { timeout: 20_000 }, (_err, stdout) => resolve(stdout));
    });
    expect(memTotalKb(inside)).toBe(147456);
    expect(inside).toMatch(/^nr_free_pages \d+$/m);
    expect(daemon.logs.some((l) => l.includes(pivotCg.key) && l.includes('"again":true'))).toBe(true);
  });

  it('gives a container that comes back under a removed container\'s cgroup path its own fresh files', async () => {
    const first = startContainer(reusedCg, { mountpoint: null }, 'sleep 600');
    reused = first;
    await until('first container attached', () => readInside(first, reusedCg, 'cat /proc/meminfo'), (r) => memTotalKb(r.stdout) === 131072);
    await first.stop();
    await reusedCg.remove();
    // The registry's sweep (every 2 s) drops the container and its subtrees.
    await until('subtree removed', () => fs.existsSync(path.join(daemon.viewsMountpoint, 'containers', encodeURIComponent(reusedCg.key))), (there) => !there);
    reusedCg = createTestCgroup('attach-r', { memoryLimitBytes: 112n * MIB }); // the same path
    const second = startContainer(reusedCg, { mountpoint: null }, 'sleep 600');
    reused = second;
    // A name cached by the kernel would lead the attach to the removed inode: ENOENT for an hour.
    const meminfo = await until('second container attached', () => readInside(second, reusedCg, 'cat /proc/meminfo'), (r) => memTotalKb(r.stdout) === 114688);
    expect(meminfo.stderr).toBe('');
    expect(mountOn(second, '/proc/meminfo')?.device).toBe(deviceOf(daemon.viewsMountpoint));
  });

  it('repairs every container\'s mounts after kill -9 and a restart, without restarting them', async () => {
    const pids = [attached.process.pid, long.process.pid, bound.process.pid];
    await daemon.kill9();
    const dead = await readInside(bound, boundCg, 'cat /proc/meminfo');
    expect(dead.code).not.toBe(0);
    expect(dead.stderr).toMatch(/Transport endpoint is not connected/);

    const started = Date.now();
    daemon = await startDaemon({ mountpoint: daemon.mountpoint, stateDir: daemon.stateDir, args: daemonArgs });
    const boundAgain = await until('bound meminfo after restart', () => readInside(bound, boundCg, 'cat /proc/meminfo'), (r) => memTotalKb(r.stdout) === 163840);
    const attachedAgain = await until('attached meminfo after restart', () => readInside(attached, attachedCg, 'cat /proc/meminfo; cat /proc/vmstat'), (r) => memTotalKb(r.stdout) === 196608 && /nr_free_pages/.test(r.stdout));
    const longAgain = await until('long meminfo after restart', () => readInside(long, longCg, 'cat /proc/meminfo'), (r) => memTotalKb(r.stdout) === 180224);
    const repairMs = Date.now() - started;
    expect(memTotalKb(boundAgain.stdout)).toBe(163840);
    expect(memTotalKb(attachedAgain.stdout)).toBe(196608);
    expect(memTotalKb(longAgain.stdout)).toBe(180224);
    // In the cgroup v2 VM (emulated CPUs, whose speed varies ~3x with the host's load) 8.5-12.3 s were seen.
    expect(repairMs).toBeLessThan(process.env.ISOLFS_VM === '1' ? 30_000 : 10_000);
    // Same containers: never restarted.
    expect([attached.process.pid, long.process.pid, bound.process.pid]).toEqual(pids);
    expect(attached.process.exitCode).toBeNull();
    // No isolfs mount in any of them is left dead: each is the new daemon's, and each opens.
    // (Not stat: the kernel answers it from cached attributes even for a dead mount.)
    const ours = new Set([deviceOf(daemon.mountpoint), deviceOf(daemon.viewsMountpoint)]);
    const ourSource = mountSourceName(daemon.mountpoint);
    const otherMountpoint = other.mountpoint;
    for (const [c, cg] of [[attached, attachedCg], [long, longCg], [bound, boundCg]] as const) {
      // Only mounts made for our mountpoint (ours or our predecessor's): isolfs instances of
      // other tests running beside this one are copied into the namespace by unshare too.
      const mounts = isolfsMounts(c).filter((m) => m.source === ourSource);
      expect(mounts.length).toBeGreaterThanOrEqual(2);
      // (Leaving out the other daemon's whole mount, copied from our namespace by unshare.)
      const tops = [...new Set(mounts.map((m) => m.mountpoint))].filter((t) => t !== otherMountpoint).map((t) => mountOn(c, t) as SeenMount);
      expect(tops.filter((m) => !ours.has(m.device)), daemon.logs.filter((l) => l.includes('repair') || l.includes('attach')).join('\n')).toEqual([]);
      const files = tops.filter((m) => m.root !== '/').map((m) => m.mountpoint);
      // The CPU directory is bound whole: listed, not read. These containers have no cgroup in
      // the unified hierarchy, so their /proc/pressure/* answer ENOENT (no PSI of their own):
      // alive, unlike ENOTCONN.
      const check = await readInside(
        c,
        cg,
        `for m in ${files.join(' ')}; do if [ -d $m ]; then ls $m > /dev/null || echo "DEAD $m"; ` +
          `else err=$(cat $m 2>&1 > /dev/null) || case "$m:$err" in /proc/pressure/*"No such file"*) ;; *) echo "DEAD $m: $err";; esac; fi; done; echo checked`,
      );
      expect(check.stdout, daemon.logs.filter((l) => l.includes('repair') || l.includes('attach')).join('\n')).toBe('checked\n');
      expect(check.stderr).toBe('');
    }
    await expect(readInside(attached, attachedCg, 'cat /proc/sys/kernel/container_stats_isolated').then((r) => r.stdout)).resolves.toBe('1\n');
    // The other daemon's live mount is still its own.
    expect(mountOn(foreign, '/proc/meminfo')?.device).toBe(deviceOf(other.mountpoint));
    expect(daemon.logs.some((l) => l.includes('repaired isolfs mounts in a container'))).toBe(true);
    console.log(`repair after restart took ${repairMs} ms`);
    expect(HOST_MEMTOTAL_KB).toBeGreaterThan(196608);
  });
});
