/**
 * "Containers" without a runtime: a shell moves itself into a test cgroup, then
 * `unshare -m -p -f --mount-proc` gives it a private mount namespace (and its own pid namespace
 * with a fresh /proc), binds the served files over /proc/... and /sys/devices/system/cpu/online,
 * and execs the program under test — what a reader in a pod experiences.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { TestCgroup } from './cgroups';

/** The files a pod binds (runc refuses /proc/vmstat at creation; unshare doesn't). */
export const BOUND_FILES = [
  '/proc/meminfo',
  '/proc/cpuinfo',
  '/proc/stat',
  '/proc/vmstat',
  '/proc/loadavg',
  '/proc/uptime',
  '/proc/swaps',
  '/sys/devices/system/cpu/online',
] as const;

export interface ContainerOptions {
  /** The isolfs mountpoint whose files are bound; null = bind nothing (a plain namespace). */
  mountpoint: string | null;
  /** Which files to bind (default all of BOUND_FILES). */
  files?: readonly string[];
  /** Own pid namespace (default true). */
  pidNamespace?: boolean;
  env?: Record<string, string>;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

function innerScript(options: ContainerOptions, command: string): string {
  const lines: string[] = ['set -e'];
  if (options.mountpoint) {
    // busybox's mount (static, from busybox-static, a test dependency): the same mount(2) as
    // util-linux's, at a fifth of the exec cost, which counts eight times per container under
    // the VM's emulated CPUs (~12 ms against ~80 ms each).
    for (const file of options.files ?? BOUND_FILES) {
      lines.push(`busybox mount --bind ${path.join(options.mountpoint, file)} ${file}`);
    }
  }
  lines.push('set +e');
  lines.push(command);
  return lines.join('\n');
}

function outerArgs(cgroup: TestCgroup | null, options: ContainerOptions, command: string): string[] {
  const join = cgroup ? cgroup.procsFiles.map((f) => `echo $$ > ${f}`).join('; ') : ':';
  const unshare = ['unshare', '-m', '--propagation', 'private'];
  if (options.pidNamespace !== false) unshare.push('-p', '-f', '--mount-proc', '--kill-child=SIGKILL');
  const quoted = innerScript(options, command).replace(/'/g, `'\\''`);
  return ['-c', `set -e; ${join}; exec ${unshare.join(' ')} bash -c '${quoted}'`];
}

/**
 * How long a container command may take by default: 60 s, and 3x that in the cgroup v2 VM
 * (ISOLFS_VM=1, test/vm/run.sh), whose emulated CPUs run every exec 5-10x slower (the same
 * factor vitest.config.ts gives its test timeout there).
 */
export const CONTAINER_TIMEOUT_MS = process.env.ISOLFS_VM === '1' ? 180_000 : 60_000;

/** Runs `command` (bash) in a container and collects its output. */
export function runInContainer(cgroup: TestCgroup | null, options: ContainerOptions, command: string, timeoutMs = CONTAINER_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', outerArgs(cgroup, options, command), {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => {
      if (child.pid) child.kill('SIGKILL');
      reject(new Error(`container command timed out after ${timeoutMs} ms: ${command}\n${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ stdout, stderr, code }); });
  });
}

export interface RunningContainer {
  process: ChildProcess;
  /** Ends the container: SIGKILL to unshare, which --kill-child passes to the namespace's init. */
  stop: () => Promise<void>;
}

/** Starts a long-running container (busy loops, sleepers); stop() ends it and everything in it. */
export function startContainer(cgroup: TestCgroup | null, options: ContainerOptions, command: string): RunningContainer {
  const child = spawn('bash', outerArgs(cgroup, options, command), {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    process: child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid) child.kill('SIGKILL');
      await exited;
    },
  };
}
