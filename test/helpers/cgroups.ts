/**
 * Real cgroups for tests, created only beneath the cgroup this process is already in, per
 * controller (read from /proc/self/cgroup), and removed afterwards.
 *
 * v1 (and hybrid): one directory per controller hierarchy. v2 (pure): one directory; because of
 * v2's "no internal processes" rule our own cgroup cannot both hold this process and delegate
 * controllers to children, so the first test cgroup moves this process into a leaf child of its
 * own cgroup ("<own>/isolfs-self") — still inside its own subtree — and enables the controllers
 * on "<own>". Test cgroups are then siblings of that leaf, all beneath our own cgroup.
 */
import fs from 'node:fs';
import path from 'node:path';

export const CGROUP_ROOT = '/sys/fs/cgroup';
export const V1_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'cpuset', 'pids', 'blkio'] as const;
const V2_CONTROLLERS = ['cpuset', 'cpu', 'io', 'memory', 'pids'];

export function isPureV2(): boolean {
  return fs.existsSync(path.join(CGROUP_ROOT, 'cgroup.controllers'));
}

/** This process's cgroup path per v1 controller, and its v2 path. */
export function ownCgroups(): { v1: Map<string, string>; unified: string } {
  const v1 = new Map<string, string>();
  let unified = '/';
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    if (!line) continue;
    const [id, controllers, ...rest] = line.split(':');
    const cgPath = rest.join(':');
    if (id === '0' && controllers === '') unified = cgPath;
    else for (const c of controllers.split(',')) v1.set(c, cgPath);
  }
  return { v1, unified };
}

export interface TestCgroupOptions {
  memoryLimitBytes?: bigint;
  memorySwapLimitBytes?: bigint;
  /** CFS quota in µs per period (v1 cpu.cfs_quota_us, v2 cpu.max). */
  cpuQuotaUs?: number;
  cpuPeriodUs?: number;
  /** cpuset.cpus, e.g. "0" */
  cpus?: string;
  /**
   * Hybrid hosts: also a cgroup in the unified (cgroup2) hierarchy beneath ours, as runc makes
   * one there, so the container has PSI files of its own (dirs 'unified'). Pure v2: always.
   */
  unified?: boolean;
}

export interface TestCgroup {
  name: string;
  /** controller -> directory (v2: every controller maps to the same directory). */
  dirs: Map<string, string>;
  /** The container key isolfs will compute (memory path, or the v2 path). */
  key: string;
  /** The directories to write a pid into to move it into this cgroup. */
  procsFiles: string[];
  remove: () => Promise<void>;
}

let v2Prepared: string | null = null;

function write(file: string, value: string): void {
  fs.writeFileSync(file, value);
}

/** v2: move ourselves into <own>/isolfs-self and delegate controllers on <own> (idempotent). */
export function prepareV2(): string {
  if (v2Prepared) return v2Prepared;
  const own = ownCgroups().unified;
  const ownDir = path.join(CGROUP_ROOT, own);
  if (path.basename(own) === 'isolfs-self') {
    v2Prepared = path.dirname(ownDir);
    return v2Prepared;
  }
  const selfDir = path.join(ownDir, 'isolfs-self');
  fs.mkdirSync(selfDir, { recursive: true });
  // Every process of our own cgroup must leave it before controllers can be delegated.
  for (const pid of fs.readFileSync(path.join(ownDir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
    try { write(path.join(selfDir, 'cgroup.procs'), pid); } catch { /* exited */ }
  }
  const available = fs.readFileSync(path.join(ownDir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  const wanted = V2_CONTROLLERS.filter((c) => available.includes(c)).map((c) => `+${c}`).join(' ');
  if (wanted) write(path.join(ownDir, 'cgroup.subtree_control'), wanted);
  v2Prepared = ownDir;
  return ownDir;
}

export function createTestCgroup(name: string, options: TestCgroupOptions = {}): TestCgroup {
  const leaf = `isolfs-test-${name}-${process.pid}`;
  const dirs = new Map<string, string>();
  const created: string[] = [];
  const procsFiles: string[] = [];
  let key: string;
  try {
    if (isPureV2()) {
      const parent = prepareV2();
      const dir = path.join(parent, leaf);
      fs.mkdirSync(dir);
      created.push(dir);
      for (const c of V2_CONTROLLERS) dirs.set(c, dir);
      dirs.set('unified', dir);
      if (options.cpus !== undefined) write(path.join(dir, 'cpuset.cpus'), options.cpus);
      if (options.memoryLimitBytes !== undefined) write(path.join(dir, 'memory.max'), String(options.memoryLimitBytes));
      if (options.memorySwapLimitBytes !== undefined) write(path.join(dir, 'memory.swap.max'), String(options.memorySwapLimitBytes));
      if (options.cpuQuotaUs !== undefined) write(path.join(dir, 'cpu.max'), `${options.cpuQuotaUs} ${options.cpuPeriodUs ?? 100000}`);
      procsFiles.push(path.join(dir, 'cgroup.procs'));
      key = dir.slice(CGROUP_ROOT.length);
    } else {
      const own = ownCgroups().v1;
      for (const controller of V1_CONTROLLERS) {
        const hierarchy = path.join(CGROUP_ROOT, controller);
        if (!(fs.existsSync(hierarchy) && own.has(controller))) continue;
        const dir = path.join(hierarchy, own.get(controller) as string, leaf);
        fs.mkdirSync(dir);
        created.push(dir);
        dirs.set(controller, dir);
        procsFiles.push(path.join(dir, 'cgroup.procs'));
      }
      const cpuset = dirs.get('cpuset');
      if (cpuset) {
        // A v1 cpuset cgroup starts empty and refuses tasks until cpus and mems are set.
        const parent = path.dirname(cpuset);
        write(path.join(cpuset, 'cpuset.cpus'), options.cpus ?? fs.readFileSync(path.join(parent, 'cpuset.cpus'), 'utf8').trim());
        write(path.join(cpuset, 'cpuset.mems'), fs.readFileSync(path.join(parent, 'cpuset.mems'), 'utf8').trim());
      }
      const memory = dirs.get('memory');
      if (memory && options.memoryLimitBytes !== undefined) write(path.join(memory, 'memory.limit_in_bytes'), String(options.memoryLimitBytes));
      if (memory && options.memorySwapLimitBytes !== undefined && fs.existsSync(path.join(memory, 'memory.memsw.limit_in_bytes'))) {
        write(path.join(memory, 'memory.memsw.limit_in_bytes'), String((options.memoryLimitBytes ?? 0n) + options.memorySwapLimitBytes));
      }
      const cpu = dirs.get('cpu');
      if (cpu && options.cpuQuotaUs !== undefined) {
        write(path.join(cpu, 'cpu.cfs_period_us'), String(options.cpuPeriodUs ?? 100000));
        write(path.join(cpu, 'cpu.cfs_quota_us'), String(options.cpuQuotaUs));
      }
      key = memory ? memory.slice(path.join(CGROUP_ROOT, 'memory').length) : '/';
      const unifiedRoot = path.join(CGROUP_ROOT, 'unified');
      if (options.unified && fs.existsSync(path.join(unifiedRoot, 'cgroup.procs'))) {
        const dir = path.join(unifiedRoot, ownCgroups().unified, leaf);
        fs.mkdirSync(dir);
        created.push(dir);
        dirs.set('unified', dir);
        procsFiles.push(path.join(dir, 'cgroup.procs'));
      }
    }
  } catch (err) {
    for (const dir of created.reverse()) try { fs.rmdirSync(dir); } catch { /* best effort */ }
    throw err;
  }
  return {
    name,
    dirs,
    key,
    procsFiles,
    remove: () => removeDirs(created),
  };
}

/** rmdir every directory, waiting for exiting tasks to leave (EBUSY) for up to 5 s. */
async function removeDirs(dirs: string[]): Promise<void> {
  const deadline = Date.now() + 5000;
  for (const dir of [...dirs].reverse()) {
    while (true) {
      try {
        fs.rmdirSync(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || Date.now() > deadline) throw new Error(`cannot remove test cgroup ${dir}: ${String(err)}`, { cause: err });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
}

/** The directories of `parent`, each once (v2: one for every controller). */
export function cgroupDirsOf(parent: TestCgroup): string[] {
  return [...new Set([...parent.dirs.values()].map((d) => fs.realpathSync(d)))];
}

/**
 * A child cgroup `name` of `parent` in each of its hierarchies, as a container's own sub-cgroups
 * (a v1 cpuset needs cpus and mems first). The caller removes them (rmdir) before the parent.
 */
export function makeChildCgroup(parent: TestCgroup, name: string): string[] {
  const dirs: string[] = [];
  for (const dir of cgroupDirsOf(parent)) {
    const child = path.join(dir, name);
    fs.mkdirSync(child);
    dirs.push(child);
    if (fs.existsSync(path.join(child, 'cpuset.mems')) && fs.readFileSync(path.join(child, 'cpuset.mems'), 'utf8').trim() === '') {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) fs.writeFileSync(path.join(child, file), fs.readFileSync(path.join(dir, file), 'utf8').trim());
    }
  }
  return dirs;
}

/** Removes child cgroups made by makeChildCgroup, last made first; an EBUSY one (tasks still leaving) is retried for 5 s. */
export async function removeChildCgroups(dirs: string[]): Promise<void> {
  for (const dir of [...dirs].reverse()) {
    for (let tries = 0; tries < 100; tries++) {
      try { fs.rmdirSync(dir); break; } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'EBUSY') break; await new Promise((r) => setTimeout(r, 50)); }
    }
  }
}
