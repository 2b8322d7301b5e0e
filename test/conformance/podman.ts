/**
 * Podman for the conformance suite, kept apart from everything else on the machine:
 *
 * - Its own storage, run state and tmp dir (PODMAN_ROOT, PODMAN_RUNROOT): no other podman user's
 *   images or containers are seen or touched. `--network none` keeps the host's network config
 *   out of it; `--events-backend file` needs no journald.
 * - runc, named: podman prefers crun when both are installed, and crun refuses a hybrid cgroup
 *   host ("cgroups in hybrid mode not supported").
 * - The cgroupfs manager, with every container under a cgroup parent beneath this process's own
 *   cgroup (checked for every controller), which the suite removes afterwards.
 * - `--ulimit nofile=...:... --ulimit nproc=...:...` at most this process's hard limits: podman's
 *   defaults for root (1048576 each) fail with "error setting rlimit type 7" (then "type 6") on a
 *   host whose hard limits are lower and that forbids raising them (this one: 20000 and 96363).
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CPU_TREE_DIR, VIEW_PATHS } from '../../src/fuse/layout';
import { FIRST_READ_FILE, firstInstruction } from './firstReads';
import { CGROUP_ROOT, isPureV2, ownCgroups, prepareV2 } from '../helpers/cgroups';

export const PODMAN_ROOT = '/var/lib/isolfs-conformance/storage';
export const PODMAN_RUNROOT = '/run/isolfs-conformance';
const NAME_PREFIX = 'isolfs-conformance-';

/** runc refuses a bind over these at creation ("inside /proc"; pressure/memory stands for all three): only attach brings them. */
export const NOT_BINDABLE: readonly string[] = ['/proc/vmstat', '/proc/partitions', '/proc/pressure/memory'];
/**
 * What bind mode binds: every /proc file isolfs serves per reader that runc allows, and the CPU
 * directory whole (as LXCFS's manifests do), which brings `online` and the cpuN directories.
 */
export const BIND_PATHS: readonly string[] = [
  ...VIEW_PATHS.filter((p) => p.startsWith('/proc/') && !NOT_BINDABLE.includes(p)),
  CPU_TREE_DIR,
];

/** The `-v` arguments of bind mode (the README's list, with <mnt> = the mountpoint). */
export function bindVolumes(mountpoint: string): string[] {
  return BIND_PATHS.map((p) => `${mountpoint}${p}:${p}:ro`);
}

export function podmanArgs(...args: string[]): string[] {
  return [
    '--root', PODMAN_ROOT, '--runroot', PODMAN_RUNROOT, '--tmpdir', path.join(PODMAN_RUNROOT, 'libpod'),
    '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', 'runc', ...args,
  ];
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export function podman(args: string[], timeoutMs = 60_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile('podman', podmanArgs(...args), { timeout: timeoutMs, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ stdout, stderr, code });
    });
  });
}

/** This process's hard limit for a resource, as /proc/self/limits names it. */
function hardLimit(name: string, fallback: number): number {
  const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(name));
  const hard = line?.slice(name.length).trim().split(/\s+/)[1];
  return hard === undefined || hard === 'unlimited' ? fallback : Math.min(Number(hard), fallback);
}

/** The --ulimit flags this host allows (the README's note for restricted hosts). */
export function ulimitFlags(): string[] {
  const nofile = hardLimit('Max open files', 1_048_576);
  const nproc = hardLimit('Max processes', 4096);
  return ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`];
}

/**
 * The cgroup parent for this run: "<own>/isolfs-conformance-<pid>". On v1 the cgroupfs manager
 * uses one absolute path in every hierarchy, so it must lie beneath our own cgroup in each
 * (true where we sit at "/" in all but one, as on the project's machines): fail loudly if not.
 */
export function cgroupParent(): string {
  if (isPureV2()) return path.join(prepareV2().slice(CGROUP_ROOT.length), `${NAME_PREFIX}${process.pid}`);
  const own = ownCgroups().v1;
  const memory = own.get('memory');
  if (memory === undefined) throw new Error('no v1 memory cgroup in /proc/self/cgroup');
  for (const [controller, cgPath] of own) {
    const beneath = cgPath === '/' || memory === cgPath || memory.startsWith(`${cgPath}/`);
    if (!beneath) throw new Error(`our ${controller} cgroup ${cgPath} is not above our memory cgroup ${memory}: no one cgroup parent lies beneath both`);
  }
  return path.join(memory, `${NAME_PREFIX}${process.pid}`);
}

/**
 * Removes the cgroup parent's directories (podman leaves them, and conmon's) in every hierarchy.
 * conmon may still be exiting after `podman rm` returned (EBUSY): retried for up to 10 s.
 */
export async function removeCgroupParent(parent: string): Promise<void> {
  const hierarchies = isPureV2() ? [CGROUP_ROOT] : fs.readdirSync(CGROUP_ROOT).map((h) => path.join(CGROUP_ROOT, h));
  for (const hierarchy of hierarchies) {
    const top = path.join(hierarchy, parent);
    if (!fs.existsSync(top)) continue;
    const dirs: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(path.join(dir, entry.name));
      dirs.push(dir);
    };
    walk(top);
    for (const dir of dirs) {
      for (let attempt = 0; ; attempt++) {
        try {
          fs.rmdirSync(dir);
          break;
        } catch (error) {
          if (attempt >= 100) {
            console.error(`isolfs conformance: could not remove cgroup ${dir}: ${String(error)}`);
            break;
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  }
}

/** Fails loudly, naming the package list, when a program the suite runs is not installed. */
export function requireCommands(commands: string[]): void {
  const missing = commands.filter((c) => {
    try { execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }); return false; } catch { return true; }
  });
  if (missing.length > 0) throw new Error(`not installed: ${missing.join(', ')} (scripts/deps.sh --test installs them)`);
}

/**
 * Removes what an earlier run of this suite left when it was killed (its process, named in them,
 * is gone): its containers, then its cgroup parents.
 */
export async function removeStaleContainers(): Promise<void> {
  const listed = await podman(['ps', '-a', '--format', '{{.Names}}']);
  for (const name of listed.stdout.split('\n')) {
    const pid = /^isolfs-conformance-(\d+)-/.exec(name)?.[1];
    if (pid !== undefined && !fs.existsSync(`/proc/${pid}`)) await podman(['rm', '-f', '-t', '0', name]);
  }
  const ours = path.dirname(cgroupParent());
  const memoryDir = isPureV2() ? path.join(CGROUP_ROOT, ours) : path.join(CGROUP_ROOT, 'memory', ours);
  for (const name of fs.readdirSync(memoryDir)) {
    const pid = new RegExp(`^${NAME_PREFIX}(\\d+)$`).exec(name)?.[1];
    if (pid !== undefined && !fs.existsSync(`/proc/${pid}`)) await removeCgroupParent(path.join(ours, name));
  }
}

export interface ContainerOptions {
  /** Unique within the run. */
  label: string;
  image: string;
  cgroupParent: string;
  memory: string;
  cpus?: string;
  cpusetCpus?: string;
  /** `-v` arguments, host:container[:options]. */
  volumes: string[];
  /** A hooks.d directory for `--hooks-dir` (the OCI hook). */
  hooksDir?: string;
}

export interface Container {
  name: string;
  /** When `podman run -d` returned (ms since the epoch). */
  startedAtMs: number;
  /** Runs `sh -c command` inside; never rejects on a non-zero exit. */
  sh: (command: string, timeoutMs?: number) => Promise<ExecResult>;
  /** The screen of an interactive program run in a terminal (tmux on the host, `podman exec -it`). */
  screen: (command: string, settleMs: number) => Promise<string>;
  remove: () => Promise<void>;
}

export async function runContainer(options: ContainerOptions): Promise<Container> {
  const name = `${NAME_PREFIX}${process.pid}-${options.label}`;
  const limits = ['--memory', options.memory];
  if (options.cpus !== undefined) limits.push('--cpus', options.cpus);
  if (options.cpusetCpus !== undefined) limits.push('--cpuset-cpus', options.cpusetCpus);
  const volumes = options.volumes.flatMap((v) => ['-v', v]);
  const hooks = options.hooksDir === undefined ? [] : ['--hooks-dir', options.hooksDir];
  // The init's first instructions read /proc/meminfo, /proc/vmstat and cpu/online and keep what they read.
  const init = firstInstruction(FIRST_READ_FILE, 'exec sleep infinity');
  const run = await podman([
    ...hooks, 'run', '-d', '--name', name, '--network', 'none', ...ulimitFlags(), '--cgroup-parent', options.cgroupParent,
    ...limits, ...volumes, options.image, 'sh', '-c', init,
  ]);
  const startedAtMs = Date.now();
  const remove = async (): Promise<void> => { await podman(['rm', '-f', '-t', '0', name]); };
  if (run.code !== 0) {
    await remove();
    throw new Error(`podman run failed (${run.code}): ${run.stderr}`);
  }
  let screens = 0;
  const sh = (command: string, timeoutMs = 30_000): Promise<ExecResult> => podman(['exec', name, 'sh', '-c', command], timeoutMs);
  const screen = async (command: string, settleMs: number): Promise<string> => {
    // A socket per screen: a server just killed may still hold the previous one's name.
    screens += 1;
    const socket = `${name}-tmux-${screens}`;
    const tmux = (...args: string[]): string => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8', timeout: 10_000 });
    const exec = ['podman', ...podmanArgs('exec', '-it', '-e', 'TERM=xterm', name, 'sh', '-c', command)];
    tmux('new-session', '-d', '-x', '120', '-y', '30', exec.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' '));
    try {
      await new Promise((r) => setTimeout(r, settleMs));
      return tmux('capture-pane', '-p');
    } finally {
      try { tmux('kill-server'); } catch { /* already gone */ }
    }
  };
  return { name, startedAtMs, sh, screen, remove };
}

/**
 * One short container (`podman run --rm`, in the foreground): its init prints its first reads
 * (probes.ts's firstInstruction) and exits.
 */
export function runFirstReads(options: Omit<ContainerOptions, 'volumes'>): Promise<ExecResult> {
  const hooks = options.hooksDir === undefined ? [] : ['--hooks-dir', options.hooksDir];
  const cpus = options.cpus === undefined ? [] : ['--cpus', options.cpus];
  return podman([
    ...hooks, 'run', '--rm', '--name', `${NAME_PREFIX}${process.pid}-${options.label}`, '--network', 'none', ...ulimitFlags(),
    '--cgroup-parent', options.cgroupParent, '--memory', options.memory, ...cpus, options.image, 'sh', '-c', firstInstruction('-', 'true'),
  ]);
}
