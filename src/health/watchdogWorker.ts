/**
 * The watchdog's own thread. It runs beside the main thread, not on it, because the failure
 * that matters most is the main thread stuck (in the kernel, or in a loop): then nothing on
 * the main event loop runs, and only another thread can abort our FUSE connection so that no
 * reader stays stuck on it. It tells the main thread its verdicts and when to exit; if the
 * main thread does not exit by itself after that, it ends the process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { ChildProber } from './childProber';
import { parentPort, workerData } from 'node:worker_threads';
import { Watchdog, type WatchdogOptions, type WatchdogVerdict } from './watchdog';
import { MOUNTINFO_MAX_BYTES, minorOf } from '../attach/mountinfo';
import { readBoundedText } from '../host/boundedRead';
import { createLogger, type LogLevel } from '../log';

export interface WatchdogWorkerData {
  options: WatchdogOptions;
  /** The file read through the mount as the probe. */
  probeFile: string;
  logLevel: LogLevel;
  /** After asking the main thread to exit, end the process ourselves past this. */
  forceExitAfterMs: number;
}

/** Messages from the main thread. */
export interface WatchdogCommand {
  type: 'shutdown';
  timeoutMs: number;
}

/** Messages to the main thread. */
export type WatchdogMessage =
  | { type: 'verdict'; verdict: WatchdogVerdict }
  | { type: 'exit'; reason: string };

const FUSECTL_DIR = '/sys/fs/fuse/connections';

/**
 * Aborts our FUSE connection through fusectl: every request waiting on it fails at once, so no
 * reader (nor our own main thread) stays stuck. fusectl is mounted first if nobody has.
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

function run(data: WatchdogWorkerData): void {
  const port = parentPort;
  if (port === null) throw new Error('watchdogWorker runs as a worker thread only');
  const logger = createLogger(data.logLevel, true);
  const post = (message: WatchdogMessage): void => port.postMessage(message);
  let last: WatchdogVerdict | null = null;
  const prober = new ChildProber(data.probeFile);
  const watchdog = new Watchdog(data.options, {
    // Capped like every procfs read here; procfs does not wait on a disk.
    readMountinfo: async () => readBoundedText('/proc/self', 'mountinfo', MOUNTINFO_MAX_BYTES),
    probe: async () => {
      // A control file: the whole FUSE path (lookup, open, read) with no cgroup read behind it.
      const text = await prober.read();
      if (text !== '0\n' && text !== '1\n') throw new Error(`${data.probeFile} answered ${JSON.stringify(text.slice(0, 20))}`);
    },
    abortConnection: () => abortFuseConnection(data.options.device),
    exit: (reason) => {
      post({ type: 'exit', reason });
      // The main thread exits on that message; if it cannot (still stuck), SIGKILL is the one
      // signal that needs nothing from it.
      setTimeout(() => {
        logger.fatal({ reason, afterMs: data.forceExitAfterMs }, 'watchdog: the main thread did not exit; killing the process');
        process.kill(process.pid, 'SIGKILL');
      }, data.forceExitAfterMs);
    },
    nowMs: () => Date.now(),
    logger,
    onVerdict: (verdict) => {
      if (last !== null && last.healthy === verdict.healthy && last.ready === verdict.ready && last.reason === verdict.reason) return;
      last = verdict;
      post({ type: 'verdict', verdict });
    },
  });
  // The daemon is stopping: no more looks, but a stop stuck in native code (where the main
  // thread's own timers cannot fire) still ends within the time given.
  port.on('message', (message: WatchdogCommand) => {
    if (message.type !== 'shutdown') return;
    watchdog.stop();
    setTimeout(() => {
      logger.fatal({ afterMs: message.timeoutMs }, 'watchdog: shutdown did not finish; killing the process');
      process.kill(process.pid, 'SIGKILL');
    }, message.timeoutMs);
  });
  watchdog.start();
}

run(workerData as WatchdogWorkerData);
