/**
 * Liveness that means it. Every couple of seconds the watchdog looks at two things, neither of
 * which may block the event loop:
 *   - our mount is still in /proc/self/mountinfo with our connection's device at our mountpoint
 *     (an external `umount` or `umount -l` removes it, silently); a capped procfs read;
 *   - a read through the mount answers (from a child process, childProber.ts; at most one in
 *     flight). A main thread too stuck to look is the deadman thread's case (startWatchdog.ts).
 * judge() turns what it saw into a verdict (pure, tested with fakes); Watchdog runs it and acts:
 *   mount gone or connection dead -> unhealthy, not ready, exit non-zero;
 *   no answer for wedgedAfterMs   -> unhealthy, not ready;
 *   no answer for abortAfterMs    -> abort our FUSE connection (fusectl), exit non-zero.
 * Why exit rather than remount: the containers' binds hold the old connection, which a second
 * mount in this process would not replace; a restarted daemon repairs exactly those (attach
 * manager), the path that is built and tested for kill -9.
 */
import { findOwnMount, parseMountinfo } from '../attach/mountinfo';

export interface ProbeFailure {
  code: string | undefined;
  message: string;
}

export interface WatchdogObservation {
  /** 'ours': our mount is there; 'gone': it is not; 'unknown': mountinfo could not be read. */
  mount: 'ours' | 'gone' | 'unknown';
  /** When the probe read now in flight started; null = none in flight. */
  probeSinceMs: number | null;
  /** How the last finished probe failed; null = it answered. */
  probeFailure: ProbeFailure | null;
}

export type WatchdogAction = 'none' | 'exit' | 'abort-and-exit';

export interface WatchdogVerdict {
  healthy: boolean;
  ready: boolean;
  /** Why, in words for /healthz and the log. */
  reason: string;
  action: WatchdogAction;
}

export interface WatchdogLimits {
  /** No answer for this long: the FUSE loop is wedged (unhealthy). */
  wedgedAfterMs: number;
  /** No answer for this long: abort our connection so no reader stays stuck, and exit. */
  abortAfterMs: number;
}

/** The connection behind the mount is gone: nothing in this process can answer through it again. */
const DEAD_CONNECTION = new Set(['ENOTCONN', 'ECONNABORTED', 'ENODEV']);

export const HEALTHY: WatchdogVerdict = { healthy: true, ready: true, reason: 'the mount answers', action: 'none' };

export function judge(seen: WatchdogObservation, nowMs: number, limits: WatchdogLimits): WatchdogVerdict {
  if (seen.mount === 'gone') {
    return { healthy: false, ready: false, reason: 'our mount is gone from mountinfo (unmounted from outside?)', action: 'exit' };
  }
  if (seen.probeSinceMs !== null) {
    const waitedMs = nowMs - seen.probeSinceMs;
    if (waitedMs >= limits.abortAfterMs) {
      return { healthy: false, ready: false, reason: `a read through the mount has not answered for ${waitedMs} ms: FUSE loop wedged`, action: 'abort-and-exit' };
    }
    if (waitedMs >= limits.wedgedAfterMs) {
      return { healthy: false, ready: false, reason: `a read through the mount has not answered for ${waitedMs} ms: FUSE loop wedged?`, action: 'none' };
    }
  }
  const failure = seen.probeFailure;
  if (failure !== null && DEAD_CONNECTION.has(failure.code ?? '')) {
    return { healthy: false, ready: false, reason: `the mount's connection is dead: ${failure.message}`, action: 'exit' };
  }
  if (failure !== null) return { healthy: false, ready: true, reason: `a read through the mount failed: ${failure.message}`, action: 'none' };
  return HEALTHY;
}

export interface WatchdogLogger {
  info: (o: object, msg: string) => void;
  warn: (o: object, msg: string) => void;
  error: (o: object, msg: string) => void;
}

export interface WatchdogDeps {
  /** The text of our /proc/self/mountinfo (never through our own mount: it cannot wedge). */
  readMountinfo: () => Promise<string>;
  /** A read through the mount; resolves when it answered, rejects with its errno error. */
  probe: () => Promise<void>;
  /** Aborts our FUSE connection; resolves to what was done (for the log). */
  abortConnection: () => Promise<string>;
  /** Ends the daemon with a non-zero status (called once). */
  exit: (reason: string) => void;
  nowMs: () => number;
  logger: WatchdogLogger;
  /** Called at every look, skipped or not: the loop that runs the looks is alive (the deadman's beat). */
  onLook?: () => void;
  /** Told every verdict (startWatchdog passes changes on to the daemon). */
  onVerdict?: (verdict: WatchdogVerdict) => void;
}

export interface WatchdogOptions extends WatchdogLimits {
  /** mountSourceName() of our mount, and the mountpoint as mountinfo shows it (symlinks resolved). */
  source: string;
  realMountpoint: string;
  /** Our connection's "major:minor", read right after mounting. */
  device: string;
  intervalMs: number;
  /** Between a fatal verdict and exit: /healthz and /readyz say why meanwhile. */
  exitGraceMs: number;
}

export class Watchdog {
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private probeSinceMs: number | null = null;
  private probeFailure: ProbeFailure | null = null;
  private current: WatchdogVerdict = HEALTHY;
  private acting = false;
  private lastLookMs: number | null = null;

  constructor(private readonly options: WatchdogOptions, private readonly deps: WatchdogDeps) {}

  get verdict(): WatchdogVerdict {
    return this.current;
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
    this.timer.unref?.(); // never what keeps the process alive
    void this.tick();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look; overlapping calls are skipped (a slow mountinfo read must not pile up). */
  async tick(): Promise<WatchdogVerdict> {
    this.deps.onLook?.();
    this.noticePause(this.deps.nowMs());
    if (this.ticking || this.acting) return this.current;
    this.ticking = true;
    try {
      const mount = await this.lookAtMount();
      this.startProbe();
      this.update(judge({ mount, probeSinceMs: this.probeSinceMs, probeFailure: this.probeFailure }, this.deps.nowMs(), this.options));
    } finally {
      this.ticking = false;
    }
    if (this.current.action !== 'none') await this.act(this.current);
    return this.current;
  }

  private async lookAtMount(): Promise<WatchdogObservation['mount']> {
    let text: string;
    try {
      text = await this.deps.readMountinfo();
    } catch {
      return 'unknown'; // the probe still tells a wedged loop; don't exit on a read we could not make
    }
    const own = findOwnMount(parseMountinfo(text), this.options.source, this.options.realMountpoint);
    return own !== undefined && own.device === this.options.device ? 'ours' : 'gone';
  }

  /**
   * A look far later than its interval asked: the process did not run meanwhile (SIGSTOP, the
   * cgroup freezer, a checkpoint), so neither could the probe's answer be taken. The probe in
   * flight is waited for from now, not taken for a wedged loop on resume.
   */
  private noticePause(nowMs: number): void {
    const pausedAfterMs = Math.max(3 * this.options.intervalMs, this.options.intervalMs + 1000);
    if (this.lastLookMs !== null && nowMs - this.lastLookMs > pausedAfterMs && this.probeSinceMs !== null) {
      this.probeSinceMs = Math.max(this.probeSinceMs, nowMs);
    }
    this.lastLookMs = nowMs;
  }

  /** At most one probe in flight: a wedged mount then holds one pool thread, not all of them. */
  private startProbe(): void {
    if (this.probeSinceMs !== null) return;
    this.probeSinceMs = this.deps.nowMs();
    this.deps.probe().then(
      () => { this.probeFailure = null; },
      (err: NodeJS.ErrnoException) => { this.probeFailure = { code: err?.code, message: err?.message ?? String(err) }; },
    ).finally(() => { this.probeSinceMs = null; });
  }

  /** Logs only changes of health, not every tick. */
  private update(next: WatchdogVerdict): void {
    const before = this.current;
    this.current = next;
    this.deps.onVerdict?.(next);
    if (next.healthy === before.healthy && next.ready === before.ready) return;
    if (next.healthy) this.deps.logger.info({ reason: next.reason }, 'watchdog: healthy again');
    else this.deps.logger.error({ reason: next.reason, ready: next.ready }, 'watchdog: unhealthy');
  }

  private async act(verdict: WatchdogVerdict): Promise<void> {
    this.acting = true;
    this.stop();
    if (verdict.action === 'abort-and-exit') {
      let done: string;
      try {
        done = await this.deps.abortConnection();
      } catch (err) {
        done = `could not abort: ${err instanceof Error ? err.message : String(err)}`;
      }
      this.deps.logger.error({ reason: verdict.reason, abort: done }, 'watchdog: aborted our wedged FUSE connection; exiting');
    } else {
      this.deps.logger.error({ reason: verdict.reason }, 'watchdog: the mount is unusable; exiting so the supervisor restarts us');
    }
    await new Promise((resolve) => setTimeout(resolve, this.options.exitGraceMs));
    this.deps.exit(verdict.reason);
  }
}
