/**
 * Starts the watchdog: its looks (watchdog.ts) on the main thread, and its last resort in the
 * addon's deadman thread (native/src/deadman.c) for when the main thread itself is stuck.
 *
 * The main thread answers every FUSE request. While it runs, the Watchdog's looks tell a mount
 * that is gone or a FUSE loop that does not answer, and act (abort, exit). When it stops running
 * (stuck in the kernel or in a loop, stopped by a debugger), nothing on it can act: each look
 * beats the deadman thread, which after `abortMs` without a beat aborts our connections and kills
 * the process. That thread needs no V8 isolate: the worker thread it replaced cost ~10 MB of RSS.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { mountSourceName } from '../fuse/filesystem';
import type { NativeAddon } from '../fuse/native';
import { MOUNTINFO_MAX_BYTES, minorOf, mountinfoLinesAt, realMountpointPath } from '../attach/mountinfo';
import { readBoundedText } from '../host/boundedRead';
import type { Logger } from '../log';
import { ChildProber } from './childProber';
import { Watchdog, type WatchdogVerdict } from './watchdog';

/** Watchdog: a look every 2 s (at most a tenth of the abort time), and a second between verdict and exit. */
const WATCHDOG_INTERVAL_MS = 2000;
const WATCHDOG_EXIT_GRACE_MS = 1000;
/**
 * Once the watchdog decides to act, the deadman stops waiting for beats (none come while it
 * aborts, waits WATCHDOG_EXIT_GRACE_MS and exits) and ends a process still running this much later.
 */
const FORCE_EXIT_AFTER_MS = 20_000;
const FUSECTL_DIR = '/sys/fs/fuse/connections';

export interface WatchdogStartOptions {
  native: Pick<NativeAddon, 'watchdogArm' | 'watchdogBeat' | 'watchdogKillAfter'>;
  /** "major:minor" of the mount to watch. */
  device: string;
  /** "major:minor" of our other connections (the container-views tree), aborted too by the deadman. */
  otherDevices: string[];
  mountpoint: string;
  /** --watchdog-abort-ms: a probe unanswered, or the main thread silent, this long aborts (a third: unhealthy). */
  abortMs: number;
  logger: Logger;
  onVerdict: (verdict: WatchdogVerdict) => void;
  /** The mount became unusable (the watchdog has logged why). */
  onExit: (reason: string) => void;
}

export interface RunningWatchdog {
  /**
   * No more looks; a process still running `timeoutMs` later is ended by the deadman (the deadline
   * is never lifted: after a stop the process exits, cli.ts).
   */
  stop: (timeoutMs: number) => void;
}

/**
 * Aborts our FUSE connection through fusectl: every request waiting on it fails at once, so no
 * reader stays stuck. fusectl is mounted first if nobody has.
 */
export async function abortFuseConnection(device: string): Promise<string> {
  const minor = minorOf(device);
  if (minor === null) throw new Error(`cannot tell the connection of device ${device}`);
  const abortFile = path.join(FUSECTL_DIR, String(minor), 'abort');
  try {
    await fs.promises.writeFile(abortFile, '1');
    return `wrote 1 to ${abortFile}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await new Promise<void>((resolve, reject) => {
    execFile('mount', ['-t', 'fusectl', 'fusectl', FUSECTL_DIR], { timeout: 5000 }, (err) => (err ? reject(err) : resolve()));
  });
  await fs.promises.writeFile(abortFile, '1');
  return `mounted fusectl on ${FUSECTL_DIR}, wrote 1 to ${abortFile}`;
}

export function startWatchdog(options: WatchdogStartOptions): RunningWatchdog {
  const { native, mountpoint, abortMs, logger } = options;
  const minors = [options.device, ...options.otherDevices].map(minorOf).filter((m): m is number => m !== null);
  const armed = native.watchdogArm(abortMs, minors);
  if (armed !== 0) logger.error({ errno: armed }, 'watchdog: cannot start the deadman thread: a stuck main thread would not be noticed');
  const probeFile = path.join(mountpoint, 'proc', 'sys', 'kernel', 'stats_isolated');
  const prober = new ChildProber(probeFile);
  const realMountpoint = realMountpointPath(mountpoint);
  let last: WatchdogVerdict | null = null;
  const watchdog = new Watchdog({
    device: options.device,
    intervalMs: Math.min(WATCHDOG_INTERVAL_MS, Math.floor(abortMs / 10)),
    wedgedAfterMs: Math.floor(abortMs / 3),
    abortAfterMs: abortMs,
    exitGraceMs: WATCHDOG_EXIT_GRACE_MS,
    source: mountSourceName(mountpoint),
    realMountpoint,
  }, {
    // Capped like every procfs read here; procfs does not wait on a disk. Only our mountpoint's
    // lines are parsed, every 2 s on the main thread.
    readMountinfo: async () => mountinfoLinesAt(readBoundedText('/proc/self', 'mountinfo', MOUNTINFO_MAX_BYTES), realMountpoint),
    probe: async () => {
      // A control file: the whole FUSE path (lookup, open, read) with no cgroup read behind it.
      const text = await prober.read();
      if (text !== '0\n' && text !== '1\n') throw new Error(`${probeFile} answered ${JSON.stringify(text.slice(0, 20))}`);
    },
    abortConnection: () => abortFuseConnection(options.device),
    exit: (reason) => options.onExit(reason),
    nowMs: () => Date.now(),
    logger,
    onLook: () => native.watchdogBeat(),
    onVerdict: (verdict) => {
      // An exit that cannot finish (a thread stuck on our own mount) is ended all the same.
      if (verdict.action !== 'none') native.watchdogKillAfter(FORCE_EXIT_AFTER_MS, `the daemon did not exit within ${FORCE_EXIT_AFTER_MS} ms of: ${verdict.reason}`);
      if (last !== null && last.healthy === verdict.healthy && last.ready === verdict.ready && last.reason === verdict.reason) return;
      last = verdict;
      options.onVerdict(verdict);
    },
  });
  watchdog.start();
  return {
    stop: (timeoutMs) => {
      watchdog.stop();
      prober.close();
      native.watchdogKillAfter(timeoutMs, `the daemon's stop did not finish within ${timeoutMs} ms`);
    },
  };
}
