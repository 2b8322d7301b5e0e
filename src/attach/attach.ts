/**
 * Attach served files into a running container's mount namespace, check them, detach them.
 *
 * The work is done by native/src/attach.c (`isolfs-attach`), a single-threaded helper: setns into
 * a mount namespace refuses multi-threaded processes, so Node cannot do it itself. This module
 * only builds the helper's command line and parses its one-line-per-target answer.
 *
 * The helper resolves a source inside a FUSE mount (open_tree + fstat), which sends requests to
 * the daemon serving it: call these functions asynchronously from the daemon (they never block
 * its event loop), never with a synchronous exec.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import path from 'node:path';
import { nativeBuildDir } from '../fuse/native';

/** A target in the container and the mounts on it to detach (detachFiles; attachFiles first). */
export interface DetachTarget {
  /** Absolute path as the container sees it, e.g. /proc/vmstat. */
  target: string;
  /**
   * Mount ids (mountinfo's first field, in the container's namespace) to detach from the target:
   * the helper detaches the topmost mount only while its id is listed, so nothing unnamed is
   * ever detached. Empty: detach nothing (attachFiles binds on top of whatever is there).
   */
  detachMountIds: readonly number[];
}

/** A host file (usually under the isolfs mountpoint) and where it goes in the container. */
export interface AttachPair extends DetachTarget {
  source: string;
}

/** The helper takes at most this many mount ids per target (a deeper stack is not ours). */
export const MAX_DETACH_IDS = 16;

export type AttachResult =
  /** `detachedMounts`: how many of the named mounts were detached from the target. */
  | { target: string; ok: true; detachedMounts: number }
  /** `errno`: the kernel's error name (ENOENT, EPERM, ...), `message` the helper's explanation. */
  | { target: string; ok: false; errno: string; message: string };

/**
 * - live: something is mounted on the target and answers (stat succeeds)
 * - dead: a mount whose FUSE connection is gone (stat fails with ENOTCONN): repair by naming its id
 * - absent: the target does not exist in the container
 * - not-mounted: the target exists and nothing is mounted on it
 * - error: the state could not be determined (stat failed otherwise; see the helper's stderr)
 */
export type MountState = 'live' | 'dead' | 'absent' | 'not-mounted' | 'error';

export interface AttachOptions {
  /** Make the attached mounts read-only (the container cannot write through them). */
  readOnly?: boolean;
  timeoutMs?: number;
}

/** The helper could not run at all: the container is gone, bad arguments, timeout, no binary. */
export class AttachHelperError extends Error {
  constructor(
    message: string,
    /** The helper's exit code (2 usage, 3 cannot enter the container), or null if it did not exit. */
    readonly exitCode: number | null,
    /** The error name the helper reported (ESRCH: no such process), or the spawn error's code. */
    readonly errno: string | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'AttachHelperError';
  }
}

// A helper blocked on a FUSE request of a hung daemon only dies on SIGKILL.
const DEFAULT_TIMEOUT_MS = 10_000;

/** isolfs-attach, built beside the addon (native/build/Release, or ISOLFS_NATIVE_DIR). */
export function defaultAttachHelperPath(): string {
  return path.join(nativeBuildDir(), 'isolfs-attach');
}

export function validateTarget(target: string): void {
  // The helper splits SRC:DST:IDS at the last two colons and prints space-separated lines.
  if (!target.startsWith('/') || /[\s:]/.test(target)) {
    throw new AttachHelperError(`invalid target ${JSON.stringify(target)}: must be absolute, without whitespace or ':'`, null, 'EINVAL', '');
  }
}

/** Throws AttachHelperError (EINVAL) unless `root` is a path the helper takes and every target is under it. */
export function validateRoot(root: string, pairs: readonly AttachPair[]): void {
  validateTarget(root);
  const under = root.endsWith('/') ? root : `${root}/`;
  const outside = pairs.find((p) => !p.target.startsWith(under));
  if (outside) throw new AttachHelperError(`target ${JSON.stringify(outside.target)} is not under ${JSON.stringify(root)}`, null, 'EINVAL', '');
}

export function validatePid(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new AttachHelperError(`invalid pid ${pid}`, null, 'EINVAL', '');
}

/** Mount ids are the kernel's positive ints; the helper reads them as a comma-separated list. */
export function validateMountIds(pair: DetachTarget): void {
  const ids = pair.detachMountIds;
  const valid = ids.length <= MAX_DETACH_IDS && ids.every((id) => Number.isInteger(id) && id > 0 && id <= 0x7fffffff);
  if (!valid) throw new AttachHelperError(`invalid mount ids to detach from ${pair.target}: ${JSON.stringify(ids)}`, null, 'EINVAL', '');
}

export interface HelperOutput {
  lines: string[];
  stderr: string;
  exitCode: number;
}

/** Runs the helper; exit codes 0 and 1 are answers (1: some item failed), anything else throws. */
export function runHelper(helperPath: string, args: string[], timeoutMs: number): Promise<HelperOutput> {
  return new Promise((resolve, reject) => {
    execFile(helperPath, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      const exitCode = exitCodeOf(err);
      if (exitCode === 0 || exitCode === 1) resolve({ lines: stdout.split('\n').filter((l) => l !== ''), stderr, exitCode });
      else reject(helperFailure({ helperPath, args, timeoutMs }, err, exitCode, stderr));
    });
  });
}

function exitCodeOf(err: ExecFileException | null): number | null {
  if (err === null) return 0;
  return typeof err.code === 'number' ? err.code : null;
}

/** Why a run gave no answer: killed at the timeout, never started, or the helper's own error line. */
function helperFailure(
  run: { helperPath: string; args: string[]; timeoutMs: number }, err: ExecFileException | null, exitCode: number | null, stderr: string,
): AttachHelperError {
  if (err?.killed) {
    return new AttachHelperError(`isolfs-attach timed out after ${run.timeoutMs} ms (${run.args.join(' ')})`, null, 'ETIMEDOUT', stderr);
  }
  if (exitCode === null) {
    // Spawn failures (ENOENT: helper not built) carry a string code.
    const code = typeof err?.code === 'string' ? err.code : null;
    return new AttachHelperError(`cannot run ${run.helperPath}: ${err?.message ?? 'unknown error'}`, null, code, stderr);
  }
  // "isolfs-attach: ESRCH pid 123: ..." — the second word is the error name.
  const firstLine = stderr.split('\n')[0] ?? '';
  const errno = /^isolfs-attach: (E[A-Z0-9]+) /.exec(firstLine)?.[1] ?? null;
  return new AttachHelperError(firstLine || `isolfs-attach exited with ${exitCode}`, exitCode, errno, stderr);
}

/** The helper prints one line per target, in argument order: "<word> <target> [rest]". */
function lineFor(output: HelperOutput, index: number, target: string): { word: string; rest: string } {
  const line = output.lines[index];
  if (line === undefined) throw new AttachHelperError(`isolfs-attach printed no line for ${target}`, output.exitCode, null, output.stderr);
  const [word = '', lineTarget = '', ...rest] = line.split(' ');
  if (lineTarget !== target) {
    throw new AttachHelperError(`isolfs-attach answered ${JSON.stringify(line)} for ${target}`, output.exitCode, null, output.stderr);
  }
  return { word, rest: rest.join(' ') };
}

/**
 * One attach or unmount line (`detachLimit`: how many ids were named): "ok DST detached=N" or
 * "err DST ERRNAME message". Anything else is a broken helper.
 */
export function parseResult(output: HelperOutput, index: number, target: string, detachLimit: number): AttachResult {
  const { word, rest } = lineFor(output, index, target);
  const detached = /^detached=(\d+)$/.exec(rest);
  if (word === 'ok' && detached && Number(detached[1]) <= detachLimit) {
    return { target, ok: true, detachedMounts: Number(detached[1]) };
  }
  const [errno = '', ...message] = rest.split(' ');
  if (word === 'err' && /^E[A-Z0-9]+$/.test(errno)) return { target, ok: false, errno, message: message.join(' ') };
  throw new AttachHelperError(`isolfs-attach answered ${JSON.stringify(output.lines[index])}`, output.exitCode, null, output.stderr);
}

/** Throws AttachHelperError (EINVAL) unless pid and every pair can be put on the helper's command line. */
export function validatePairs(pid: number, pairs: readonly AttachPair[]): void {
  validatePid(pid);
  for (const pair of pairs) {
    validateTarget(pair.target);
    validateMountIds(pair);
    if (pair.source === '' || pair.source.startsWith('@')) throw new AttachHelperError(`invalid source for ${pair.target}: ${JSON.stringify(pair.source)}`, null, 'EINVAL', '');
  }
}

/**
 * Bind each source (a host path) over its target inside the mount namespace of `pid` (any
 * process of the container; its root directory is where targets are resolved), after detaching
 * the pair's named mounts from the target. Targets must already exist: nothing is created
 * inside a container. One result per pair, in order; throws AttachHelperError only when nothing
 * could be done (e.g. errno ESRCH: the process is gone).
 */
export async function attachFiles(helperPath: string, pid: number, pairs: readonly AttachPair[], opts: AttachOptions = {}): Promise<AttachResult[]> {
  validatePairs(pid, pairs);
  if (pairs.length === 0) return [];
  const args = ['--pid', String(pid)];
  if (opts.readOnly) args.push('--read-only');
  args.push('--', ...pairs.map((p) => `${p.source}:${p.target}:${p.detachMountIds.join(',')}`));
  const output = await runHelper(helperPath, args, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  return pairs.map((p, i) => parseResult(output, i, p.target, p.detachMountIds.length));
}

/** The state of each target inside the container of `pid` (to find mounts that need repair). */
export async function checkMounts(
  helperPath: string, pid: number, targets: readonly string[], opts: { timeoutMs?: number } = {},
): Promise<Map<string, MountState>> {
  validatePid(pid);
  const states = new Map<string, MountState>();
  if (targets.length === 0) return states;
  for (const target of targets) validateTarget(target);
  const output = await runHelper(helperPath, ['--pid', String(pid), '--check', '--', ...targets], opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  targets.forEach((target, i) => {
    const { word } = lineFor(output, i, target);
    const state: MountState = word === 'live' || word === 'dead' || word === 'absent' || word === 'not-mounted' ? word : 'error';
    states.set(target, state);
  });
  return states;
}

/**
 * Detach, lazily (MNT_DETACH), each target's named mounts inside the container of `pid`: the
 * topmost while its id is named, as attachFiles does before binding; nothing is bound. A target
 * whose top mount is not named is left as it is (ok, detachedMounts 0).
 */
export async function detachFiles(
  helperPath: string, pid: number, targets: readonly DetachTarget[], opts: { timeoutMs?: number } = {},
): Promise<AttachResult[]> {
  validatePid(pid);
  if (targets.length === 0) return [];
  for (const target of targets) {
    validateTarget(target.target);
    validateMountIds(target);
  }
  const args = ['--pid', String(pid), '--unmount', '--', ...targets.map((t) => `${t.target}:${t.detachMountIds.join(',')}`)];
  const output = await runHelper(helperPath, args, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  return targets.map((t, i) => parseResult(output, i, t.target, t.detachMountIds.length));
}
