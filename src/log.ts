/** JSON-lines logging (pino) to stdout, the way a container's first process should log. */
import pino from 'pino';

export type Logger = pino.Logger;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * `syncWrites`: every line is written to stdout before the call returns, for a logger whose
 * last line may be followed by SIGKILL (the watchdog thread's).
 */
export function createLogger(level: LogLevel, syncWrites = false): Logger {
  const options = { level, base: { name: 'isolfs' }, timestamp: pino.stdTimeFunctions.isoTime };
  return syncWrites ? pino(options, pino.destination({ dest: 1, sync: true })) : pino(options);
}

/**
 * Lets one message through per key per interval: a misbehaving cgroup read on every request
 * must not turn the log into the bottleneck.
 */
export class RateLimitedLog {
  private readonly lastMs = new Map<string, number>();
  constructor(private readonly intervalMs: number) {}

  allow(key: string, nowMs: number): boolean {
    const last = this.lastMs.get(key);
    if (last !== undefined && nowMs - last < this.intervalMs) return false;
    if (this.lastMs.size > 10_000) this.lastMs.clear();
    this.lastMs.set(key, nowMs);
    return true;
  }
}
