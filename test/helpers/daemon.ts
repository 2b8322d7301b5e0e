/**
 * Starts the real daemon (the built CLI, as an operator would) on a fresh mountpoint with its
 * own state directory, and makes sure it is stopped and unmounted afterwards.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(PROJECT_ROOT, 'dist', 'cli.js');

export interface DaemonHandle {
  mountpoint: string;
  stateDir: string;
  process: ChildProcess;
  /** Log lines (JSON) printed so far. */
  logs: string[];
  stderr: string[];
  /** SIGTERM and wait: the daemon unmounts itself. */
  stop(): Promise<void>;
  /** SIGKILL: leaves the mount dead, like a crash. */
  kill9(): Promise<void>;
  /** Cleans up whatever stop/kill left: the mount, the directories. */
  cleanup(): Promise<void>;
}

export interface StartOptions {
  args?: string[];
  /**
   * A command the daemon runs under, e.g. ['unshare', '-C'] for its own cgroup namespace: the
   * daemon's argv (node, the CLI, its args) is appended.
   */
  wrap?: string[];
  /** Reuse a state dir / mountpoint (restart tests). */
  stateDir?: string;
  mountpoint?: string;
}

export function isMounted(mountpoint: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mountpoint);
}

export async function startDaemon(options: StartOptions = {}): Promise<DaemonHandle> {
  const ownsBase = !options.mountpoint || !options.stateDir;
  const base = ownsBase ? fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-test-')) : '';
  // Readers in the tests run as other uids too (the non-root writer): let them reach the mount.
  if (ownsBase) fs.chmodSync(base, 0o755);
  const mountpoint = options.mountpoint ?? path.join(base, 'mnt');
  const stateDir = options.stateDir ?? path.join(base, 'state');
  // A restart reuses a mountpoint that may still hold the dead mount (ENOTCONN): leave it to the
  // daemon, which must cope with exactly that.
  if (!options.mountpoint) fs.mkdirSync(mountpoint, { recursive: true });
  const argv = [process.execPath, CLI, mountpoint, '--state-dir', stateDir, '--log-level', 'debug', ...(options.args ?? [])];
  const [command, ...args] = [...(options.wrap ?? []), ...argv];
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const stderr: string[] = [];
  child.stdout?.on('data', (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean)));
  child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const deadline = Date.now() + 15_000;
  while (!logs.some((l) => l.includes('isolfs serving'))) {
    if (child.exitCode !== null) throw new Error(`isolfs exited with ${child.exitCode}: ${stderr.join('')}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`isolfs did not start: ${stderr.join('')}\n${logs.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const cleanup = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    if (isMounted(mountpoint)) {
      try { execFileSync('umount', ['-l', mountpoint], { stdio: 'ignore' }); } catch { /* already gone */ }
    }
    if (ownsBase) fs.rmSync(base, { recursive: true, force: true });
  };
  return {
    mountpoint,
    stateDir,
    process: child,
    logs,
    stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    kill9: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    cleanup,
  };
}
