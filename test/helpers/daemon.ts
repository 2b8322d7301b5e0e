/**
 * Starts the real daemon (the built CLI, as an operator would) on a fresh mountpoint with its
 * own state directory, and makes sure it is stopped and unmounted afterwards.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(PROJECT_ROOT, 'dist', 'cli.js');

/**
 * ISOLFS_SANITIZE=1 (scripts/test.sh's sanitizer lane): the daemon loads the ASan+UBSan build of
 * the addon (native/sanitize/binding.gyp) through ISOLFS_NATIVE_DIR. A node binary built without
 * ASan loads an ASan .node only with libasan preloaded, so only the daemon gets LD_PRELOAD.
 */
export const SANITIZE = process.env.ISOLFS_SANITIZE === '1';
export const SANITIZED_NATIVE_DIR = path.join(PROJECT_ROOT, 'native', 'sanitize', 'build', 'Release');
const SANITIZER_REPORT = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: \w+Sanitizer/;

function sanitizerEnv(): NodeJS.ProcessEnv {
  if (!SANITIZE) return process.env;
  const libasan = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
  if (!(path.isAbsolute(libasan) && fs.existsSync(libasan))) throw new Error(`ISOLFS_SANITIZE=1: gcc does not know libasan.so (${libasan})`);
  if (!fs.existsSync(path.join(SANITIZED_NATIVE_DIR, 'isolfs_native.node'))) {
    throw new Error(`ISOLFS_SANITIZE=1: no sanitizer build in ${SANITIZED_NATIVE_DIR} (scripts/test.sh builds it)`);
  }
  return {
    ...process.env,
    ISOLFS_NATIVE_DIR: SANITIZED_NATIVE_DIR,
    LD_PRELOAD: libasan,
    // Leaks: node and the tools the daemon runs free little at exit; what we hunt is bad access.
    // No abort/core dump on an error: a dumping daemon waits on its own mount forever; exit 1.
    ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=0:disable_coredump=1',
    UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
  };
}

/** The pid (the daemon or, under `wrap`, one below it) that has the addon mapped, and from where. */
function loadedAddon(pid: number, depth = 3): string | null {
  let maps = '';
  try { maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8'); } catch { return null; }
  const line = maps.split('\n').find((l) => l.endsWith('/isolfs_native.node'));
  if (line) return line.slice(line.indexOf('/'));
  if (depth === 0) return null;
  let children: string[] = [];
  try { children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean); } catch { /* exited */ }
  for (const child of children) {
    const found = loadedAddon(Number(child), depth - 1);
    if (found) return found;
  }
  return null;
}

/** The sanitizer report the daemon (or a helper it ran) printed, if any. */
function sanitizerReport(stderr: string[], logs: string[]): string | null {
  const text = [...stderr, ...logs].join('\n');
  const at = text.search(SANITIZER_REPORT);
  return at < 0 ? null : text.slice(Math.max(0, at - 200), at + 4000);
}

const sanitizerReports: string[] = [];
// Registered when a test file imports this helper: a file-level hook, so it runs after the
// file's own cleanup (cgroups, mounts) and fails the file if any of its daemons reported.
if (SANITIZE) {
  afterAll(() => {
    if (sanitizerReports.length > 0) throw new Error(`sanitizer report from the daemon:\n${sanitizerReports.join('\n----\n')}`);
  });
}

export interface DaemonHandle {
  mountpoint: string;
  /** --hook-socket: beside the mountpoint (served only with --attach). */
  hookSocket: string;
  /** --views-mountpoint: beside the mountpoint (the daemon mounts it only with attach or repair). */
  viewsMountpoint: string;
  stateDir: string;
  process: ChildProcess;
  /** Log lines (JSON) printed so far. */
  logs: string[];
  stderr: string[];
  /** SIGTERM and wait: the daemon unmounts itself. */
  stop: () => Promise<void>;
  /** SIGKILL: leaves the mount dead, like a crash. */
  kill9: () => Promise<void>;
  /** Cleans up whatever stop/kill left: the mount, the directories. */
  cleanup: () => Promise<void>;
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

/**
 * Sanitizer lane: the daemon's stderr passes through this watcher, which aborts the FUSE
 * connection at the first sanitizer report. A separate process, because a test blocked in a
 * read of the wedged mount runs no handler, and a daemon that dies while one of its threads
 * waits on its own mount never finishes exiting until the connection is aborted.
 */
const WATCH_SCRIPT = `mnt=$1
while IFS= read -r line || [ -n "$line" ]; do
  printf '%s\\n' "$line"
  case $line in
    *'ERROR: AddressSanitizer'*|*'ERROR: LeakSanitizer'*|*'runtime error:'*)
      dev=$(awk -v m="$mnt" '$5 == m && / - fuse[.]isolfs / {print $3}' /proc/self/mountinfo)
      [ -n "$dev" ] && echo 1 > "/sys/fs/fuse/connections/\${dev#*:}/abort" ;;
  esac
done`;

function startSanitizerWatcher(mountpoint: string): ChildProcess {
  ensureFusectl();
  return spawn('bash', ['-c', WATCH_SCRIPT, 'isolfs-sanitizer-watch', mountpoint], { stdio: ['pipe', 'pipe', 'inherit'] });
}

function ensureFusectl(): void {
  if (!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(' - fusectl ')) {
    execFileSync('mount', ['-t', 'fusectl', 'fusectl', '/sys/fs/fuse/connections']);
  }
}

function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void promise.then(() => { clearTimeout(timer); resolve(true); });
  });
}

/**
 * echo 1 > /sys/fs/fuse/connections/<minor>/abort: every request of the mount fails with
 * ECONNABORTED. The minor comes from mountinfo, since stat on a wedged mount hangs too.
 */
export function abortFuseConnection(mountpoint: string): boolean {
  const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .find((l) => l.split(' ')[4] === mountpoint && l.includes(' - fuse.isolfs '));
  if (!line) return false;
  ensureFusectl();
  fs.writeFileSync(`/sys/fs/fuse/connections/${line.split(' ')[2].split(':')[1]}/abort`, '1');
  return true;
}

export async function startDaemon(options: StartOptions = {}): Promise<DaemonHandle> {
  const ownsBase = !(options.mountpoint && options.stateDir);
  const base = ownsBase ? fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-test-')) : '';
  // Readers in the tests run as other uids too (the non-root writer): let them reach the mount.
  if (ownsBase) fs.chmodSync(base, 0o755);
  const mountpoint = options.mountpoint ?? path.join(base, 'mnt');
  const stateDir = options.stateDir ?? path.join(base, 'state');
  // A restart reuses a mountpoint that may still hold the dead mount (ENOTCONN): leave it to the
  // daemon, which must cope with exactly that.
  if (!options.mountpoint) fs.mkdirSync(mountpoint, { recursive: true });
  // The container-views tree goes beside the mountpoint (not under /run/isolfs): a restart on
  // the same mountpoint finds its predecessor's there, and cleanup removes it with the rest.
  const viewsMountpoint = path.join(path.dirname(mountpoint), 'views');
  // The OCI hook's socket too (served with --attach): the default one is the host's.
  const hookSocket = path.join(path.dirname(mountpoint), 'hook', 'hook.sock');
  const argv = [
    process.execPath, CLI, mountpoint, '--state-dir', stateDir, '--views-mountpoint', viewsMountpoint, '--log-level', 'debug',
    '--hook-socket', hookSocket, ...(options.args ?? []),
  ];
  const [command, ...args] = [...(options.wrap ?? []), ...argv];
  const watcher = SANITIZE ? startSanitizerWatcher(mountpoint) : null;
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', watcher?.stdin ?? 'pipe'],
    env: sanitizerEnv(),
  });
  const logs: string[] = [];
  const stderr: string[] = [];
  child.stdout?.on('data', (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean)));
  (watcher?.stdout ?? child.stderr)?.on('data', (d: Buffer) => stderr.push(d.toString()));
  watcher?.stdin?.destroy(); // the daemon holds the pipe now: EOF when it exits
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
  if (SANITIZE) {
    // A lane that silently ran the plain build would prove nothing.
    const loaded = child.pid === undefined ? null : loadedAddon(child.pid);
    if (loaded !== path.join(SANITIZED_NATIVE_DIR, 'isolfs_native.node')) {
      child.kill('SIGKILL');
      throw new Error(`ISOLFS_SANITIZE=1 but the daemon loaded ${loaded ?? 'no addon'}: does src/fuse/native.ts honour ISOLFS_NATIVE_DIR?`);
    }
  }
  const cleanup = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      // A daemon whose own thread waits on its own mount (a wedged loop, a core dump) never dies
      // of SIGKILL: aborting the connection frees it.
      if (!(await settlesWithin(exited, 5000))) {
        abortFuseConnection(mountpoint);
        abortFuseConnection(viewsMountpoint);
        await exited;
      }
    }
    for (const dir of [viewsMountpoint, mountpoint]) {
      if (!isMounted(dir)) continue;
      try { execFileSync('umount', ['-l', dir], { stdio: 'ignore' }); } catch { /* already gone */ }
    }
    if (ownsBase) fs.rmSync(base, { recursive: true, force: true });
    const report = SANITIZE ? sanitizerReport(stderr, logs) : null;
    if (report) {
      sanitizerReports.push(report);
      console.error(`sanitizer report from the daemon:\n${report}`);
    }
  };
  return {
    mountpoint,
    hookSocket,
    viewsMountpoint,
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
