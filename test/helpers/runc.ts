/**
 * Real OCI containers for tests: Debian's runc with a busybox-static rootfs.
 *
 * - The rootfs is built once into ROOTFS_CACHE_DIR (busybox plus one symlink per applet) and
 *   shared read-only by every container (root.readonly; a tmpfs on /tmp for scratch).
 * - runc keeps its state under a private --root (RUNC_STATE_ROOT), so these helpers never see
 *   or touch anyone else's containers.
 * - Good citizen: on v1/hybrid cgroupsPath is RELATIVE. runc's cgroupfs driver joins a relative
 *   path to runc's own cgroup in each controller, so the container lands beneath our cgroup
 *   everywhere (memory: /<our memory path>/<id>; cpu, cpuset, ...: /<id> under our "/"). An
 *   absolute path would be used as-is in every hierarchy: outside our memory cgroup. On pure v2
 *   runc joins a relative path to the PARENT of its own cgroup (outside ours), so there we give
 *   the absolute <our v2 cgroup>/<id> (needs our cgroup to delegate controllers: true for the
 *   root cgroup, as in the test VM; untested elsewhere). runc removes its cgroups on delete.
 * - Container stdio goes to files in the bundle: with terminal=false runc passes its own stdio
 *   fds to the container, so a pipe would keep a `runc run -d` caller waiting forever.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { CGROUP_ROOT, isPureV2, prepareV2 } from './cgroups';
import os from 'node:os';
import path from 'node:path';

export const RUNC_STATE_ROOT = '/run/isolfs-test-runc';
export const ROOTFS_CACHE_DIR = '/var/tmp/isolfs-runc-rootfs';
const BUSYBOX = '/bin/busybox';
// Bump when the rootfs layout changes so caches built by older versions are rebuilt.
const ROOTFS_FORMAT = 1;
const ID_PREFIX = 'isolfs-test-';

export interface RuncBind {
  /** Host path (file or directory). */
  source: string;
  /** Path inside the container. runc refuses most of /proc (e.g. /proc/vmstat). */
  destination: string;
  /** Default true. */
  readOnly?: boolean;
}

export interface RuncContainerOptions {
  /** The container's init (default: sleep forever). */
  args?: string[];
  memoryLimitBytes?: bigint;
  /** CFS quota per period; period defaults to 100000 µs. */
  cpuQuotaUs?: number;
  cpuPeriodUs?: number;
  /** cpuset, e.g. "0". */
  cpus?: string;
  binds?: RuncBind[];
  /** Extra environment, NAME=value. */
  env?: string[];
  /** Capabilities for the init and execs (default: runc spec's three). */
  capabilities?: string[];
  /** A network namespace (only loopback; default true). */
  networkNamespace?: boolean;
  /**
   * root.path "rootfs", relative to the bundle (as containerd writes it): a copy of the shared
   * rootfs there (runc refuses a symlink); default: the shared rootfs's absolute path.
   */
  relativeRoot?: boolean;
  /** With relativeRoot: changes the bundle's copy of the rootfs before the container is created. */
  prepareRootfs?: (rootfsDir: string) => void;
  /** Mounts of `runc spec`'s defaults left out, by destination (e.g. '/sys'). */
  dropMounts?: string[];
  /**
   * A word put before the pid in the container's id and cgroup (isolfs-test-<word>-<pid>-<n>), so
   * that a daemon attaching the prefix isolfs-test-<pid>- leaves this container alone.
   */
  idWord?: string;
  /** linux.rootfsPropagation (runc's default: rslave). */
  rootfsPropagation?: string;
  /** OCI hooks by stage (createRuntime, ...), as in config.json. */
  hooks?: Record<string, OciHook[]>;
}

/** One entry of config.json's hooks. */
export interface OciHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RuncContainer {
  id: string;
  /** The container's init as the host sees it. */
  pid: number;
  bundleDir: string;
  /** Where the container's stdout and stderr go (and runc's own messages). */
  logFile: string;
  /** How long `runc run --detach` took, hooks included. */
  runMs: number;
  /** The cgroupsPath given to runc (v1: relative, i.e. beneath our own cgroup in each controller). */
  cgroupsPath: string;
  /** Controller (v1 name, or "" for the unified hierarchy) -> host path under /sys/fs/cgroup/<hierarchy>. */
  cgroups: () => Map<string, string>;
  /** `runc exec`; resolves with the exit code (never rejects on a non-zero exit). */
  exec: (command: string[], timeoutMs?: number) => Promise<ExecResult>;
  /** SIGKILL to every process of the container (`runc kill --all`). */
  kill: () => Promise<void>;
  /** Kill, remove runc's state and cgroups, remove the bundle. Idempotent. */
  delete: () => Promise<void>;
}

/** runc refused or failed; `output` has runc's own messages. */
export class RuncError extends Error {
  constructor(message: string, readonly output: string) {
    super(message);
    this.name = 'RuncError';
  }
}

export function runcAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('runc', ['--version'], { stdio: 'ignore' });
    return fs.existsSync(BUSYBOX);
  } catch {
    return false;
  }
}

function runcArgs(...args: string[]): string[] {
  return ['--root', RUNC_STATE_ROOT, ...args];
}

function runRunc(args: string[], timeoutMs = 30_000): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile('runc', runcArgs(...args), { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(new RuncError(`runc ${args.join(' ')}: ${err.message}`, stderr));
        return;
      }
      resolve({ stdout, stderr, code: err === null ? 0 : (err.code as number) });
    });
  });
}

function busyboxStamp(): string {
  const st = fs.statSync(BUSYBOX);
  return `format ${ROOTFS_FORMAT} busybox ${st.size} ${Math.trunc(st.mtimeMs)}\n`;
}

/** Builds the shared busybox rootfs once (atomically: built aside, then renamed into place). */
export function ensureRootfs(): string {
  const stampFile = path.join(ROOTFS_CACHE_DIR, '.isolfs-rootfs');
  const stamp = busyboxStamp();
  try {
    if (fs.readFileSync(stampFile, 'utf8') === stamp) return ROOTFS_CACHE_DIR;
  } catch { /* not built yet */ }
  const building = `${ROOTFS_CACHE_DIR}.build-${process.pid}`;
  fs.rmSync(building, { recursive: true, force: true });
  for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'etc', 'root', 'run', 'var/tmp']) {
    fs.mkdirSync(path.join(building, dir), { recursive: true });
  }
  fs.copyFileSync(BUSYBOX, path.join(building, 'bin', 'busybox'));
  fs.chmodSync(path.join(building, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a !== '' && a !== 'busybox');
  for (const applet of applets) fs.symlinkSync('busybox', path.join(building, 'bin', applet));
  fs.writeFileSync(path.join(building, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  fs.writeFileSync(path.join(building, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  fs.writeFileSync(path.join(building, 'etc', 'hostname'), 'isolfs-test\n');
  fs.writeFileSync(path.join(building, '.isolfs-rootfs'), stamp);
  fs.rmSync(ROOTFS_CACHE_DIR, { recursive: true, force: true });
  try {
    fs.renameSync(building, ROOTFS_CACHE_DIR);
  } catch (err) {
    // Another process won the race: use its rootfs.
    fs.rmSync(building, { recursive: true, force: true });
    if (!fs.existsSync(stampFile)) throw err;
  }
  return ROOTFS_CACHE_DIR;
}

interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

interface OciConfig {
  process: {
    terminal: boolean;
    args: string[];
    env: string[];
    capabilities?: Record<string, string[]>;
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: OciMount[];
  linux: {
    cgroupsPath?: string;
    resources?: {
      memory?: { limit?: number };
      cpu?: { quota?: number; period?: number; cpus?: string; mems?: string };
      [key: string]: unknown;
    };
    namespaces: Array<{ type: string; path?: string }>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** `runc spec` (the installed runc's defaults), edited for a test container. */
function writeConfig(bundleDir: string, rootfs: string, cgroupsPath: string, options: RuncContainerOptions): void {
  execFileSync('runc', ['spec', '--bundle', bundleDir]);
  const configFile = path.join(bundleDir, 'config.json');
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as OciConfig;
  config.process.terminal = false;
  config.process.args = options.args ?? ['sleep', '2147483647'];
  config.process.env = [...config.process.env.filter((e) => !e.startsWith('TERM=')), ...(options.env ?? [])];
  if (options.capabilities) {
    const caps = options.capabilities;
    config.process.capabilities = { bounding: caps, effective: caps, permitted: caps, ambient: caps };
  }
  config.root = { path: rootfs, readonly: true };
  if (options.relativeRoot) {
    fs.cpSync(rootfs, path.join(bundleDir, 'rootfs'), { recursive: true, verbatimSymlinks: true });
    config.root.path = 'rootfs';
    options.prepareRootfs?.(path.join(bundleDir, 'rootfs'));
  }
  config.mounts = config.mounts.filter((m) => !options.dropMounts?.includes(m.destination));
  if (options.rootfsPropagation !== undefined) config.linux.rootfsPropagation = options.rootfsPropagation;
  config.hostname = 'isolfs-test';
  config.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=16m'] });
  for (const bind of options.binds ?? []) {
    config.mounts.push({
      destination: bind.destination,
      type: 'bind',
      source: bind.source,
      options: ['bind', bind.readOnly === false ? 'rw' : 'ro'],
    });
  }
  config.linux.cgroupsPath = cgroupsPath;
  const resources = config.linux.resources ?? {};
  // OCI JSON numbers: test limits are far below 2^53, so Number() is exact here.
  if (options.memoryLimitBytes !== undefined) resources.memory = { limit: Number(options.memoryLimitBytes) };
  if (options.cpuQuotaUs !== undefined || options.cpus !== undefined) {
    resources.cpu = {};
    if (options.cpuQuotaUs !== undefined) {
      resources.cpu.quota = options.cpuQuotaUs;
      resources.cpu.period = options.cpuPeriodUs ?? 100_000;
    }
    if (options.cpus !== undefined) resources.cpu.cpus = options.cpus;
  }
  config.linux.resources = resources;
  if (options.hooks) config.hooks = options.hooks;
  if (options.networkNamespace === false) config.linux.namespaces = config.linux.namespaces.filter((n) => n.type !== 'network');
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
}

const live = new Set<string>();
let counter = 0;
let exitHookInstalled = false;

/** Last resort if a test forgets delete(): remove our containers when this process exits. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const id of live) {
      try { execFileSync('runc', runcArgs('delete', '--force', id), { stdio: 'ignore', timeout: 10_000 }); } catch { /* best effort */ }
    }
  });
}

/**
 * Removes containers left in our private runc root by test processes that no longer exist
 * (ids carry the creating pid), with their bundles. Live processes' containers are left alone.
 */
export async function removeStaleContainers(): Promise<string[]> {
  if (!fs.existsSync(RUNC_STATE_ROOT)) return [];
  const listed = await runRunc(['list', '--format', 'json']);
  if (listed.code !== 0) throw new RuncError('runc list failed', listed.stderr);
  const entries = (JSON.parse(listed.stdout || 'null') as Array<{ id: string; bundle: string }> | null) ?? [];
  const removed: string[] = [];
  for (const entry of entries) {
    const owner = /^isolfs-test-(\d+)-\d+$/.exec(entry.id)?.[1];
    if (owner === undefined || fs.existsSync(`/proc/${owner}`)) continue;
    await runRunc(['delete', '--force', entry.id]);
    if (entry.bundle.startsWith(path.join(os.tmpdir(), ID_PREFIX))) fs.rmSync(entry.bundle, { recursive: true, force: true });
    removed.push(entry.id);
  }
  return removed;
}

/** Where runc should put a container's cgroups so they are beneath ours (see the header). */
function containerCgroupsPath(id: string): string {
  if (!isPureV2()) return id;
  // v2: a cgroup with processes cannot have children with controllers. Like the other test
  // cgroups, the container goes beside our own leaf ("isolfs-self"), in the cgroup that
  // delegates its controllers.
  return path.posix.join('/', path.relative(CGROUP_ROOT, prepareV2()), id);
}

/** Controller -> host cgroup directory of a process, from /proc/<pid>/cgroup (v1 and unified). */
function cgroupsOf(pid: number): Map<string, string> {
  const dirs = new Map<string, string>();
  for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    if (!line) continue;
    const [, controllers = '', ...rest] = line.split(':');
    const cgPath = rest.join(':');
    if (controllers === '') {
      const unified = fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
      dirs.set('', path.join(unified, cgPath));
      continue;
    }
    // A hierarchy is mounted at /sys/fs/cgroup/<its controllers, comma-joined> (name=X at X).
    const hierarchy = controllers.startsWith('name=') ? controllers.slice(5) : controllers;
    for (const controller of controllers.split(',')) dirs.set(controller, path.join('/sys/fs/cgroup', hierarchy, cgPath));
  }
  return dirs;
}

/**
 * True once `pid` has exited. Its parent after `runc run -d` is this machine's pid 1, which reaps
 * lazily (seconds), so an exited init can stay a zombie for a while: that counts as dead.
 */
export function processExited(pid: number): boolean {
  try {
    return /^State:\s+[ZX]/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

async function waitUntilDead(pid: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!processExited(pid)) {
    if (Date.now() > deadline) throw new RuncError(`container init ${pid} still running ${timeoutMs} ms after delete`, '');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Creates and starts a container (`runc run -d`). Rejects with RuncError (runc's message in
 * `output`) when runc refuses the spec, leaving nothing behind.
 */
export async function runContainer(options: RuncContainerOptions = {}): Promise<RuncContainer> {
  const rootfs = ensureRootfs();
  fs.mkdirSync(RUNC_STATE_ROOT, { recursive: true, mode: 0o700 });
  installExitHook();
  const id = `${ID_PREFIX}${options.idWord ? `${options.idWord}-` : ''}${process.pid}-${++counter}`;
  const bundleDir = fs.mkdtempSync(path.join(os.tmpdir(), `${id}-`));
  const cgroupsPath = containerCgroupsPath(id);
  const pidFile = path.join(bundleDir, 'init.pid');
  const logFile = path.join(bundleDir, 'init.log');
  let runMs = 0;
  try {
    writeConfig(bundleDir, rootfs, cgroupsPath, options);
    const logFd = fs.openSync(logFile, 'a');
    let code: number | null;
    const started = performance.now();
    try {
      const child = spawn('runc', runcArgs('run', '--detach', '--bundle', bundleDir, '--pid-file', pidFile, id), {
        stdio: ['ignore', logFd, logFd],
      });
      code = await new Promise<number | null>((resolve, reject) => {
        child.on('error', reject);
        child.on('exit', (c) => resolve(c));
      });
    } finally {
      fs.closeSync(logFd);
    }
    runMs = performance.now() - started;
    if (code !== 0) {
      const output = fs.readFileSync(logFile, 'utf8');
      throw new RuncError(`runc run ${id} exited with ${code}: ${output.trim()}`, output);
    }
  } catch (err) {
    // runc cleans up a failed run itself; make sure, then drop the bundle.
    try { execFileSync('runc', runcArgs('delete', '--force', id), { stdio: 'ignore' }); } catch { /* was never created */ }
    fs.rmSync(bundleDir, { recursive: true, force: true });
    throw err;
  }
  live.add(id);
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  let deleted = false;
  return {
    id,
    pid,
    bundleDir,
    logFile,
    runMs,
    cgroupsPath,
    cgroups: () => cgroupsOf(pid),
    exec: (command, timeoutMs = 30_000) => runRunc(['exec', id, ...command], timeoutMs),
    kill: async () => {
      const result = await runRunc(['kill', '--all', id, 'KILL']);
      if (result.code !== 0 && !/not running|does not exist/.test(result.stderr)) throw new RuncError(`runc kill ${id} failed`, result.stderr);
    },
    delete: async () => {
      if (deleted) return;
      const result = await runRunc(['delete', '--force', id]);
      if (result.code !== 0 && !/does not exist/.test(result.stderr)) throw new RuncError(`runc delete ${id} failed: ${result.stderr.trim()}`, result.stderr);
      deleted = true;
      live.delete(id);
      fs.rmSync(bundleDir, { recursive: true, force: true });
      await waitUntilDead(pid);
    },
  };
}
