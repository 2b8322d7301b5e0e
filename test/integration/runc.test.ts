/**
 * A real OCI runtime end to end: Debian's runc runs a busybox-static container with a memory limit
 * and a CFS quota. meminfo, cpuinfo, stat and loadavg are bound at creation from the shared mount
 * (what a pod's hostPath volumes do); /proc/vmstat, which runc refuses at creation, is attached
 * afterwards by the daemon (--attach). Then the daemon is killed with SIGKILL and started again:
 * within seconds every reader in the container gets correct content again, the container is never
 * restarted, and no isolfs mount in it is left dead.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { CGROUP_ROOT, isPureV2, prepareV2 } from '../helpers/cgroups';
import { removeStaleContainers, runContainer, runcAvailable, type RuncContainer } from '../helpers/runc';
import { checkMounts, defaultAttachHelperPath } from '../../src/attach/attach';

const MIB = 1024n * 1024n;
const LIMIT = 128n * MIB;

/** The cgroup path prefix runc's containers of this test process get (see helpers/runc.ts). */
function runcCgroupPrefix(): string {
  if (isPureV2()) return path.posix.join('/', path.relative(CGROUP_ROOT, prepareV2()), `isolfs-test-${process.pid}-`);
  const own = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').map((l) => l.split(':'))
    .find(([, controllers]) => controllers?.split(',').includes('memory'))?.slice(2).join(':');
  return path.posix.join(own ?? '/', `isolfs-test-${process.pid}-`);
}

function memTotalKb(text: string): number | null {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) : null;
}

describe('runc container: bound at creation, attached afterwards, repaired after kill -9', () => {
  let daemon: DaemonHandle;
  let container: RuncContainer;
  const daemonArgs = ['--attach', runcCgroupPrefix(), '--attach-interval-ms', '300'];

  beforeAll(async () => {
    expect(runcAvailable(), 'runc and /bin/busybox are needed (scripts/deps.sh --test installs them)').toBe(true);
    await removeStaleContainers();
    daemon = await startDaemon({ args: daemonArgs });
    const bind = (file: string) => ({ source: path.join(daemon.mountpoint, file), destination: file });
    container = await runContainer({
      memoryLimitBytes: LIMIT,
      cpuQuotaUs: 50_000,
      cpuPeriodUs: 100_000,
      binds: ['/proc/meminfo', '/proc/cpuinfo', '/proc/stat', '/proc/loadavg'].map(bind),
    });
  });

  afterAll(async () => {
    await container?.delete();
    await daemon?.cleanup();
    if (daemon) fs.rmSync(path.dirname(daemon.mountpoint), { recursive: true, force: true });
  });

  const readAll = async () => container.exec(['sh', '-c', 'cat /proc/meminfo; grep -c ^processor /proc/cpuinfo; grep -c "^cpu[0-9]" /proc/stat; cat /proc/loadavg; grep ^nr_free_pages /proc/vmstat']);

  /** Whether everything the container reads is its own view. */
  const correct = (out: string): boolean => {
    const lines = out.trim().split('\n');
    const freePages = Number(/^nr_free_pages (\d+)$/m.exec(out)?.[1] ?? Number.NaN);
    return memTotalKb(out) === Number(LIMIT / 1024n)
      && lines.includes('1') // one CPU in cpuinfo and one cpuN line in stat (quota 0.5 CPU)
      && /^[\d.]+ [\d.]+ [\d.]+ \d+\/\d+ \d+$/m.test(out)
      && freePages > 0 && BigInt(freePages) * 4096n <= LIMIT;
  };

  it('shows the container its memory limit, its CPU quota and its own vmstat', async () => {
    const deadline = Date.now() + 15_000;
    let result = await readAll();
    while (!correct(result.stdout) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 300)); // the attach scan brings /proc/vmstat
      result = await readAll();
    }
    expect(result.stdout, result.stderr + daemon.logs.filter((l) => !l.includes("\"level\":20")).join("\n")).toMatch(/^MemTotal:\s+131072 kB$/m);
    const [cpuinfoCount, statCpuLines] = result.stdout.split('\n').filter((l) => /^\d+$/.test(l));
    expect(cpuinfoCount).toBe('1');
    expect(statCpuLines).toBe('1');
    expect(correct(result.stdout), result.stdout + result.stderr).toBe(true);
    const vmstatMount = fs.readFileSync(`/proc/${container.pid}/mountinfo`, 'utf8').split('\n')
      .find((l) => l.includes(' - fuse.isolfs ') && l.split(' ')[4] === '/proc/vmstat');
    expect(vmstatMount, 'vmstat attached by the daemon').toBeDefined();
  });

  it('comes back within seconds after kill -9 and a restart, without restarting the container', async () => {
    const initPid = container.pid;
    await daemon.kill9();
    // An attached view is served from the page cache: the dead mount still gives its last
    // content until its attributes expire (50 ms); then every read fails.
    await new Promise((r) => setTimeout(r, 100));
    const broken = await container.exec(['cat', '/proc/meminfo']);
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toMatch(/Transport endpoint is not connected/);

    const started = Date.now();
    daemon = await startDaemon({ mountpoint: daemon.mountpoint, stateDir: daemon.stateDir, args: daemonArgs });
    let result = await readAll();
    while (!correct(result.stdout) && Date.now() - started < 15_000) {
      await new Promise((r) => setTimeout(r, 100));
      result = await readAll();
    }
    const tookMs = Date.now() - started;
    expect(correct(result.stdout), result.stdout + result.stderr).toBe(true);
    expect(tookMs).toBeLessThan(10_000);
    console.log(`runc container readable again ${tookMs} ms after the restart began`);

    // Never restarted: the same init, still running.
    expect(container.pid).toBe(initPid);
    expect(fs.existsSync(`/proc/${initPid}`)).toBe(true);
    // No isolfs mount in the container is dead: the topmost on each path is the new daemon's
    // (by device), answers the helper's forced stat (--check), and opens from inside.
    // Attached views come from the container-views tree, the rest from the main one.
    const deviceAt = (mountpoint: string) => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' '))
      .find((f) => f[4] === mountpoint && f[3] === '/')?.[2];
    const ours = [deviceAt(daemon.mountpoint), deviceAt(daemon.viewsMountpoint)];
    expect(ours.every((d) => d !== undefined)).toBe(true);
    const mounts = fs.readFileSync(`/proc/${initPid}/mountinfo`, 'utf8').split('\n')
      .filter((l) => l.includes(' - fuse.isolfs ')).map((l) => l.split(' '));
    const topmost = new Map(mounts.map((f) => [f[4], f[2]])); // later lines sit on earlier ones
    expect([...topmost.keys()].sort((a, b) => a.localeCompare(b))).toEqual(['/proc/cpuinfo', '/proc/diskstats', '/proc/loadavg', '/proc/meminfo', '/proc/partitions', '/proc/pressure/cpu', '/proc/pressure/io', '/proc/pressure/memory', '/proc/stat', '/proc/swaps', '/proc/uptime', '/proc/vmstat', '/sys/devices/system/cpu', '/sys/devices/system/cpu/online']);
    expect([...topmost.entries()].filter(([, device]) => !ours.includes(device))).toEqual([]);
    const states = await checkMounts(defaultAttachHelperPath(), initPid, [...topmost.keys()]);
    expect([...states.values()].every((state) => state === 'live'), JSON.stringify([...states])).toBe(true);
    const check = await container.exec(['sh', '-c', `for m in ${[...topmost.keys()].join(' ')}; do if [ -d $m ]; then ls $m; else cat $m; fi > /dev/null || echo "DEAD $m"; done; echo checked`]);
    expect(check.stdout).toBe('checked\n');
  });
});
