/**
 * The OCI hook end to end: runc runs the hook (native/src/hook.c) as a createRuntime hook, the
 * hook asks the daemon over its socket, the daemon binds the container's files under its rootfs
 * before pivot_root, and the container's first instruction already reads its own meminfo, vmstat
 * and cpu/online. Nothing is bound at creation and the daemon's periodic scan is 10 minutes
 * away, so only the hook can have put the files there. Without a daemon, or with one that never
 * answers, the container starts anyway (the hook exits 0: at once, or at its timeout). Podman
 * runs the same hook from deploy/oci-hooks/isolfs.json through --hooks-dir, with runc, and with
 * crun where crun runs (pure cgroup v2: the VM).
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { CGROUP_ROOT, isPureV2, prepareV2 } from '../helpers/cgroups';
import { ensureRootfs, removeStaleContainers, runContainer, runcAvailable, type OciHook, type RuncContainer } from '../helpers/runc';
import { nativeBuildDir } from '../../src/fuse/native';

const HOOK = path.join(nativeBuildDir(), 'isolfs-oci-hook');
const MIB = 1024n * 1024n;
const LIMIT = 128n * MIB;
const FIRST_INSTRUCTION = 'cat /proc/meminfo; echo =====; cat /proc/vmstat; echo =====; cat /sys/devices/system/cpu/online; echo =====; sleep 2147483647';

/** The cgroup path prefix runc's containers of this test process get (see helpers/runc.ts). */
function runcCgroupPrefix(): string {
  if (isPureV2()) return path.posix.join('/', path.relative(CGROUP_ROOT, prepareV2()), `isolfs-test-${process.pid}-`);
  const own = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').map((l) => l.split(':'))
    .find(([, controllers]) => controllers?.split(',').includes('memory'))?.slice(2).join(':');
  return path.posix.join(own ?? '/', `isolfs-test-${process.pid}-`);
}

/**
 * The hook's wait: its default (2 s) here; in the cgroup v2 VM, whose emulated CPUs make the
 * daemon's first attach take seconds, long enough that the test is about the mechanism.
 */
const HOOK_TIMEOUT_MS = process.env.ISOLFS_VM === '1' ? 60_000 : 2000;
/** `runc run` of a container whose hook does not wait: ~70 ms here, seconds in the VM. */
const RUN_AT_ONCE_MS = process.env.ISOLFS_VM === '1' ? 20_000 : 2000;

function hook(socket: string, timeoutMs = HOOK_TIMEOUT_MS): Record<string, OciHook[]> {
  const args = ['isolfs-oci-hook', '--socket', socket, '--timeout-ms', String(timeoutMs)];
  return { createRuntime: [{ path: HOOK, args }] };
}

/** The three files as the first instruction printed them, once it has; the time it took to see them. */
async function firstReads(container: RuncContainer, sinceMs: number): Promise<{ meminfo: string; vmstat: string; online: string; seenMs: number }> {
  const deadline = Date.now() + 10_000;
  while (true) {
    const parts = fs.readFileSync(container.logFile, 'utf8').split('=====\n');
    if (parts.length >= 4) {
      return { meminfo: parts[0], vmstat: parts[1], online: parts[2].trim(), seenMs: performance.now() - sinceMs };
    }
    if (Date.now() > deadline) throw new Error(`the container printed no output: ${parts.join('=====\n')}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

const memTotalKb = (text: string): number => Number(/^MemTotal:\s+(\d+) kB/m.exec(text)?.[1]);
const freePages = (text: string): number => Number(/^nr_free_pages (\d+)/m.exec(text)?.[1]);
const hostMemTotalKb = memTotalKb(fs.readFileSync('/proc/meminfo', 'utf8'));

describe('OCI hook (createRuntime): attached before the first instruction', () => {
  let daemon: DaemonHandle;
  const containers: RuncContainer[] = [];
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-hook-test-'));

  beforeAll(async () => {
    expect(runcAvailable(), 'runc and /bin/busybox are needed (scripts/deps.sh --test installs them)').toBe(true);
    expect(fs.existsSync(HOOK), `${HOOK} is built by npm install (native/binding.gyp)`).toBe(true);
    await removeStaleContainers();
    // The periodic scan runs once at start (no container yet), then not for 10 minutes.
    daemon = await startDaemon({ args: ['--attach', runcCgroupPrefix(), '--attach-interval-ms', '600000'] });
  });

  afterAll(async () => {
    for (const c of containers) await c.delete();
    await daemon?.cleanup();
    if (daemon) fs.rmSync(path.dirname(daemon.mountpoint), { recursive: true, force: true });
    fs.rmSync(base, { recursive: true, force: true });
  });

  /** `outsidePrefix`: a cgroup the daemon's --attach prefix does not cover, so only a hook could attach it. */
  async function run(hooks: Record<string, OciHook[]>, relativeRoot = false, outsidePrefix = false): Promise<{ container: RuncContainer; startedMs: number }> {
    const startedMs = performance.now();
    const container = await runContainer({
      memoryLimitBytes: LIMIT, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, args: ['sh', '-c', FIRST_INSTRUCTION], hooks, relativeRoot,
      idWord: outsidePrefix ? 'nohook' : undefined,
    });
    containers.push(container);
    return { container, startedMs };
  }

  it('the first instruction reads the container\'s meminfo, vmstat and cpu/online, nothing bound at creation', async () => {
    const { container, startedMs } = await run(hook(daemon.hookSocket));
    const first = await firstReads(container, startedMs);
    const hookLines = daemon.logs.filter((l) => l.includes('OCI hook'));
    expect(memTotalKb(first.meminfo), `the daemon said: ${hookLines.join('\n')}`).toBe(Number(LIMIT / 1024n));
    expect(freePages(first.vmstat)).toBeLessThanOrEqual(Number(LIMIT / 4096n));
    expect(first.online).toBe('0');
    const mounts = fs.readFileSync(`/proc/${container.pid}/mountinfo`, 'utf8').split('\n').filter((l) => l.includes(' - fuse.isolfs '));
    const targets = mounts.map((l) => l.split(' ')[4]);
    expect(targets).toEqual(expect.arrayContaining(['/proc/meminfo', '/proc/vmstat', '/sys/devices/system/cpu/online']));
    const logged = daemon.logs.map((l) => JSON.parse(l) as { msg: string; result?: string; ms?: number }).find((l) => l.msg === 'OCI hook request');
    expect(logged?.result).toBe('attached');
    console.log(`runc run with the hook: ${container.runMs.toFixed(0)} ms; first correct read seen ${first.seenMs.toFixed(0)} ms after runc run began; daemon side ${logged?.ms} ms`);
  });

  it('attaches every one of 8 containers started at once (4 attaches at a time, the rest queued)', async () => {
    const started = await Promise.all(Array.from({ length: 8 }, () => run(hook(daemon.hookSocket))));
    const firsts = await Promise.all(started.map(({ container, startedMs }) => firstReads(container, startedMs)));
    expect(firsts.map((f) => memTotalKb(f.meminfo))).toEqual(new Array(8).fill(Number(LIMIT / 1024n)));
    expect(firsts.map((f) => f.online)).toEqual(new Array(8).fill('0'));
    console.log(`8 containers at once with the hook: first correct reads seen after ${firsts.map((f) => f.seenMs.toFixed(0)).join(', ')} ms`);
  });

  it('finds a rootfs given relative to the bundle (containerd\'s layout)', async () => {
    const { container, startedMs } = await run(hook(daemon.hookSocket), true);
    const first = await firstReads(container, startedMs);
    expect(memTotalKb(first.meminfo)).toBe(Number(LIMIT / 1024n));
    expect(first.online).toBe('0');
  });

  it('refuses a target reached through an image\'s symlink (sys/devices -> a host path): the host path is untouched, the rest is attached, the container starts', async () => {
    // The image's /sys/devices names a host directory that has system/cpu. Before pivot_root the
    // runtime's root is the host's, so a target resolved there would be a host path; no sysfs is
    // mounted over /sys (a config without one), so the link is what the hook's target meets.
    const victim = fs.mkdtempSync(path.join(base, 'victim-'));
    fs.mkdirSync(path.join(victim, 'system', 'cpu'), { recursive: true });
    fs.writeFileSync(path.join(victim, 'system', 'cpu', 'online'), 'the host\'s own file\n');
    const startedMs = performance.now();
    const container = await runContainer({
      memoryLimitBytes: LIMIT, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, args: ['sh', '-c', FIRST_INSTRUCTION], hooks: hook(daemon.hookSocket),
      relativeRoot: true, dropMounts: ['/sys', '/sys/fs/cgroup'],
      prepareRootfs: (rootfs) => {
        fs.rmSync(path.join(rootfs, 'sys'), { recursive: true, force: true });
        fs.mkdirSync(path.join(rootfs, 'sys'));
        fs.symlinkSync(victim, path.join(rootfs, 'sys', 'devices'));
      },
    });
    containers.push(container);
    const first = await firstReads(container, startedMs);
    expect(memTotalKb(first.meminfo)).toBe(Number(LIMIT / 1024n));
    const logged = daemon.logs.map((l) => JSON.parse(l) as { msg: string; pid?: number; result?: string; reason?: string })
      .find((l) => l.msg === 'OCI hook request' && l.pid === container.pid);
    expect(logged?.result, JSON.stringify(logged)).toBe('failed');
    expect(logged?.reason).toMatch(/sys\/devices\/system\/cpu: ELOOP a directory on the target's path is a symlink: refused/);
    expect(logged?.reason).not.toMatch(/\/proc\/meminfo/);
    expect(fs.readFileSync(path.join(victim, 'system', 'cpu', 'online'), 'utf8')).toBe('the host\'s own file\n');
    expect(fs.readdirSync(path.join(victim, 'system', 'cpu'))).toEqual(['online']);
    const mounted = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m?.startsWith(victim));
    expect(mounted).toEqual([]);
    // Gone before the next tests: the daemon's repeat looks at a container whose attach failed
    // must not be what attaches theirs (the daemon-less tests expect no attach at all).
    await container.delete();
    containers.splice(containers.indexOf(container), 1);
  });

  it('attaches at /proc/... when run after pivot_root (the hook by hand for a running container)', async () => {
    const container = await runContainer({ memoryLimitBytes: LIMIT, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000 });
    containers.push(container);
    const state = JSON.stringify({ ociVersion: '1.0.2', id: container.id, status: 'running', pid: container.pid, bundle: container.bundleDir });
    const hookRun = spawnSync(HOOK, ['--socket', daemon.hookSocket, '--timeout-ms', String(HOOK_TIMEOUT_MS)], { input: state, encoding: 'utf8' });
    expect(hookRun.status).toBe(0);
    expect(hookRun.stderr).toBe('');
    const read = await container.exec(['sh', '-c', 'grep MemTotal /proc/meminfo; cat /sys/devices/system/cpu/online']);
    expect(memTotalKb(read.stdout)).toBe(Number(LIMIT / 1024n));
    expect(read.stdout.trim().split('\n').at(-1)).toBe('0');
  });

  // crun 1.8 (Debian 12) refuses a hybrid host ("cgroups in hybrid mode not supported"): it runs
  // in the cgroup v2 VM (test/vm/run.sh), and is said to be left out here.
  const runtimes = isPureV2() ? ['runc', 'crun'] : ['runc'];
  if (!isPureV2()) console.warn('isolfs: hybrid cgroups here: NOT running the podman --runtime crun case (crun 1.8 refuses them; test/vm/run.sh runs it)');
  it.each(runtimes)('podman --runtime %s run --hooks-dir with deploy/oci-hooks/isolfs.json: the first instruction reads its own files', async (runtime) => {
    const podman = await podmanRun(daemon.hookSocket, base, runtime, 'sh', '-c', FIRST_INSTRUCTION.replace('; sleep 2147483647', ''));
    const [meminfo = '', vmstat = '', online = ''] = podman.stdout.split('=====\n');
    expect(podman.code, podman.stderr).toBe(0);
    expect(memTotalKb(meminfo)).toBe(Number(LIMIT / 1024n));
    expect(freePages(vmstat)).toBeLessThanOrEqual(Number(LIMIT / 4096n));
    expect(online.trim()).toBe('0');
    console.log(`podman --runtime ${runtime} run with the hook, to its exit: ${podman.ms.toFixed(0)} ms`);
  });

  it('without a daemon, the container starts at once with the host\'s files', async () => {
    // A 60 s timeout: the hook must not wait for it when nobody listens. Outside the test daemon's
    // --attach prefix: else its discovery may attach the container before the first read (seen in CI).
    const { container, startedMs } = await run(hook(path.join(base, 'absent.sock'), 60_000), false, true);
    const first = await firstReads(container, startedMs);
    expect(memTotalKb(first.meminfo)).toBe(hostMemTotalKb);
    expect(container.runMs).toBeLessThan(RUN_AT_ONCE_MS);
  });

  it('with a daemon that never answers, the container starts at the hook\'s timeout', async () => {
    const silent = path.join(base, 'silent.sock');
    const held: net.Socket[] = [];
    const server = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => server.listen(silent, resolve));
    try {
      const { container, startedMs } = await run(hook(silent, 500), false, true);
      await firstReads(container, startedMs);
      expect(held.length).toBe(1);
      expect(container.runMs).toBeGreaterThanOrEqual(500);
      expect(container.runMs).toBeLessThan(500 + RUN_AT_ONCE_MS);
    } finally {
      for (const s of held) s.destroy();
      server.close();
    }
  });
});

/**
 * `podman run --rm` of the busybox rootfs (a copy: podman writes into it) with the hooks.d JSON we
 * ship, pointed at the built hook and the test daemon's socket. Podman's state goes to a private
 * --root/--runroot; the container's cgroup parent is beneath ours (like runc's, see runcCgroupPrefix)
 * and removed afterwards. `--ulimit`: this host forbids raising hard limits ("error setting rlimit
 * type 7"), and podman asks for more by default.
 */
async function podmanRun(socket: string, base: string, runtime: string, ...command: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const dir = fs.mkdtempSync(path.join(base, 'podman-'));
  const hooksDir = path.join(dir, 'hooks.d');
  fs.mkdirSync(hooksDir);
  const shipped = fs.readFileSync(path.join(__dirname, '..', '..', 'deploy', 'oci-hooks', 'isolfs.json'), 'utf8');
  const config = shipped.replace('/opt/isolfs/bin/isolfs-oci-hook', HOOK).replace('/run/isolfs-hook/hook.sock', socket)
    .replace('"--timeout-ms", "2000"', `"--timeout-ms", "${HOOK_TIMEOUT_MS}"`).replace('"timeout": 10', '"timeout": 120');
  fs.writeFileSync(path.join(hooksDir, 'isolfs.json'), config);
  const rootfs = path.join(dir, 'rootfs');
  fs.cpSync(ensureRootfs(), rootfs, { recursive: true, verbatimSymlinks: true });
  const parent = `${runcCgroupPrefix()}podman`;
  const args = [
    '--root', path.join(dir, 'storage'), '--runroot', path.join(dir, 'run'), '--runtime', runtime, '--cgroup-manager', 'cgroupfs',
    '--hooks-dir', hooksDir,
    'run', '--rm', '--network', 'none', '--cgroup-parent', parent, '--memory', String(LIMIT), '--cpus', '0.5',
    '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4096:4096', '--rootfs', rootfs, ...command,
  ];
  const started = performance.now();
  try {
    return await new Promise((resolve, reject) => {
      execFile('podman', args, { timeout: 60_000, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') reject(new Error(`podman: ${err.message}`));
        else resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr, ms: performance.now() - started });
      });
    });
  } finally {
    await removeCgroupEverywhere(parent);
    // podman's storage driver may leave its private bind of <root>/overlay (seen after a failed run).
    const leftovers = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m?.startsWith(`${dir}/`));
    for (const mountpoint of leftovers.reverse()) execFileSync('umount', ['-l', mountpoint]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * rmdir a cgroup path (and what is left below it) in every hierarchy mounted under /sys/fs/cgroup.
 * podman's conmon (in <parent>/conmon) may take a moment to exit after `podman run --rm` returns:
 * EBUSY is retried for 5 s, then what is still in those cgroups (processes our podman started) is
 * killed by pid.
 */
async function removeCgroupEverywhere(cgroupPath: string): Promise<void> {
  const hierarchies = isPureV2() ? [CGROUP_ROOT] : fs.readdirSync(CGROUP_ROOT).map((h) => path.join(CGROUP_ROOT, h));
  const dirs: string[] = [];
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) if (entry.isDirectory()) walk(path.join(d, entry.name));
    dirs.push(d);
  };
  for (const hierarchy of hierarchies) if (fs.existsSync(path.join(hierarchy, cgroupPath))) walk(path.join(hierarchy, cgroupPath));
  const deadline = Date.now() + 5000;
  for (const d of dirs) {
    while (fs.existsSync(d)) {
      try {
        fs.rmdirSync(d);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw err;
        if (Date.now() > deadline) {
          for (const pid of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
            try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}
