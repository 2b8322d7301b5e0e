/**
 * Starts the watchdog in a thread of its own (watchdogWorker.ts): it must still act when the
 * main thread is the one stuck. Its verdicts and its exit request come back through callbacks.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { mountSourceName } from '../fuse/filesystem';
import { realMountpointPath } from '../attach/mountinfo';
import type { Logger, LogLevel } from '../log';
import type { WatchdogVerdict } from './watchdog';
import type { WatchdogMessage, WatchdogWorkerData } from './watchdogWorker';

/** Watchdog: a look every 2 s (at most a tenth of the abort time), and a second between verdict and exit. */
const WATCHDOG_INTERVAL_MS = 2000;
const WATCHDOG_EXIT_GRACE_MS = 1000;
/** The watchdog thread ends the process itself when the main thread has not exited by then. */
const FORCE_EXIT_AFTER_MS = 10_000;
/** The watchdog thread holds a few small objects: a small heap is plenty. */
const WATCHDOG_HEAP = { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 };

export interface WatchdogThreadOptions {
  /** "major:minor" of the mount to watch. */
  device: string;
  mountpoint: string;
  /** --watchdog-abort-ms: a probe unanswered this long aborts the connection (a third: unhealthy). */
  abortMs: number;
  logger: Logger;
  onVerdict: (verdict: WatchdogVerdict) => void;
  /** The mount became unusable (the thread has logged why). */
  onExit: (reason: string) => void;
}

export function startWatchdogThread(options: WatchdogThreadOptions): Worker {
  const { mountpoint, abortMs, logger } = options;
  const data: WatchdogWorkerData = {
    options: {
      device: options.device,
      intervalMs: Math.min(WATCHDOG_INTERVAL_MS, Math.floor(abortMs / 10)),
      wedgedAfterMs: Math.floor(abortMs / 3),
      abortAfterMs: abortMs,
      exitGraceMs: WATCHDOG_EXIT_GRACE_MS,
      source: mountSourceName(mountpoint),
      realMountpoint: realMountpointPath(mountpoint),
    },
    probeFile: path.join(mountpoint, 'proc', 'sys', 'kernel', 'stats_isolated'),
    logLevel: logger.level as LogLevel,
    forceExitAfterMs: FORCE_EXIT_AFTER_MS,
  };
  const worker = new Worker(path.join(__dirname, 'watchdogWorker.js'), { workerData: data, resourceLimits: WATCHDOG_HEAP });
  worker.on('message', (message: WatchdogMessage) => {
    if (message.type === 'verdict') options.onVerdict(message.verdict);
    else if (message.type === 'exit') options.onExit(message.reason);
  });
  worker.on('error', (err) => logger.error({ err: err.stack ?? String(err) }, 'watchdog thread failed: no liveness checks from now on'));
  worker.unref(); // never what keeps the process alive
  return worker;
}
