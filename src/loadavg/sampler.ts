/**
 * Per-container load averages, computed the way the kernel computes the host's: every 5 s,
 * count the container's runnable (R) and uninterruptible (D) threads and fold the count into
 * three exponential moving averages (kernelLoad.ts).
 *
 * Cost follows use. Only containers someone has read recently are sampled: a read (`get` or
 * `touch`) marks a container, and one not read for `idleForgetMs` is dropped. A tick samples at
 * most `maxContainersPerTick` containers, longest-unsampled first (round robin), so a node with
 * many containers cannot make one tick run long (LXCFS's loadavg thread, which walks every
 * container every 5 s, is reported freezing at 250+ containers). A container skipped by the
 * bound catches up when it is next sampled: its missed periods are folded in at once with the
 * kernel's calc_load_n (the same catch-up the kernel does after NO_HZ idle skipped sampling),
 * assuming the count just read held throughout. Periods are counted from the clock, not from
 * timer callbacks, so a stalled event loop is caught up the same way.
 *
 * The first read of a container never sampled samples it at once (synchronously), and the
 * averages are SEEDED with that instantaneous count, not started at 0 as the kernel starts at
 * boot. The kernel starts at 0 because at boot nothing has run yet; a container met here has
 * usually been running for a long time before its first read (and after every daemon
 * restart), so its current count is a far better estimate of its recent average than 0 —
 * starting at 0 would show a busy container as idle for minutes (load15 needs ~45 min to get
 * within 5%). The price: a burst caught by the very first sample shows briefly in all three
 * averages. An idle container seeds at 0, exactly like the kernel.
 */
import type { TaskCounts } from '../cgroup/snapshot';
import { calcLoadN, EXP_1, EXP_15, EXP_5, FIXED_1, LOAD_FREQ_MS } from './kernelLoad';

/** What a read of a container's loadavg needs. */
export interface LoadSample {
  /** Fixed-point averages (FIXED_1 = 1.0) over 1, 5 and 15 minutes; print with formatLoad. */
  load1: number;
  load5: number;
  load15: number;
  /** Threads in state R at the last sample (the kernel's nr_running()). */
  running: number;
  /** All threads at the last sample (the kernel's nr_threads). */
  total: number;
}

export interface LoadavgSamplerOptions {
  /**
   * Count the container's threads; null when its cgroup is gone (the container is then
   * forgotten). Bounded by the reader itself (TaskCounts.truncated). May throw: a tick reports
   * it to `onError` and retries next tick; `get` lets it propagate to the request.
   */
  countTasks: (key: string) => TaskCounts | null;
  /** Sampling period; the EXP_* constants assume 5000. Other values are for tests only. */
  intervalMs?: number;
  /** A container not read for this long is dropped (default 10 min). */
  idleForgetMs?: number;
  /** At most this many countTasks calls per tick (default 100). */
  maxContainersPerTick?: number;
  /** Monotonic clock in ms (default performance.now). */
  nowMs?: () => number;
  /** A countTasks failure during a tick (default: ignored; counted in stats). */
  onError?: (key: string, error: unknown) => void;
  /** After every tick, with its stats (the daemon feeds its metrics from this). */
  onTick?: (stats: LoadavgSamplerStats) => void;
}

export interface LoadavgSamplerStats {
  /** Containers tracked now (read within idleForgetMs). */
  containers: number;
  /** Timer ticks run so far. */
  ticks: number;
  /** countTasks calls in the last tick. */
  sampledLastTick: number;
  /** Containers due in the last tick but left for later by maxContainersPerTick. */
  deferredLastTick: number;
  /** Samples in the last tick whose count stopped at the reader's task bound. */
  truncatedLastTick: number;
  /** countTasks failures in the last tick. */
  errorsLastTick: number;
  /** Wall time the last tick took. */
  durationLastTickMs: number;
  /** Containers dropped because nobody read them for idleForgetMs, since start. */
  forgottenIdle: number;
  /** Containers dropped because their cgroup was gone, since start. */
  forgottenGone: number;
}

interface TrackedContainer {
  load1: number;
  load5: number;
  load15: number;
  running: number;
  total: number;
  /** Sampling period of the last sample; null until the first one. */
  sampledPeriod: number | null;
  lastReadMs: number;
}

const DEFAULT_IDLE_FORGET_MS = 10 * 60 * 1000;
const DEFAULT_MAX_CONTAINERS_PER_TICK = 100;

export class LoadavgSampler {
  private readonly countTasks: (key: string) => TaskCounts | null;
  private readonly intervalMs: number;
  private readonly idleForgetMs: number;
  private readonly maxContainersPerTick: number;
  private readonly nowMs: () => number;
  private readonly onError: (key: string, error: unknown) => void;
  private readonly onTick: (stats: LoadavgSamplerStats) => void;
  /** Map order is sampling order: a sampled container moves to the end (round robin). */
  private readonly containers = new Map<string, TrackedContainer>();
  private readonly originMs: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly counters = {
    ticks: 0,
    sampledLastTick: 0,
    deferredLastTick: 0,
    truncatedLastTick: 0,
    errorsLastTick: 0,
    durationLastTickMs: 0,
    forgottenIdle: 0,
    forgottenGone: 0,
  };

  constructor(options: LoadavgSamplerOptions) {
    this.countTasks = options.countTasks;
    this.intervalMs = options.intervalMs ?? LOAD_FREQ_MS;
    this.idleForgetMs = options.idleForgetMs ?? DEFAULT_IDLE_FORGET_MS;
    this.maxContainersPerTick = options.maxContainersPerTick ?? DEFAULT_MAX_CONTAINERS_PER_TICK;
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.onError = options.onError ?? (() => {});
    this.onTick = options.onTick ?? (() => {});
    if (!(this.intervalMs > 0)) throw new RangeError(`intervalMs must be > 0: ${this.intervalMs}`);
    if (!(this.maxContainersPerTick >= 1)) {
      throw new RangeError(`maxContainersPerTick must be >= 1: ${this.maxContainersPerTick}`);
    }
    this.originMs = this.nowMs();
  }

  /** Sample every intervalMs. The timer is unref'd: it never keeps the process alive. */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Mark a read of `key`: keeps it sampled (and starts sampling it, from the next tick). */
  touch(key: string): void {
    this.track(key, this.nowMs());
  }

  /**
   * The container's load, marking the read. A container never sampled is sampled now, so the
   * first reply already holds its count. Null when its cgroup is gone.
   */
  get(key: string): LoadSample | null {
    const now = this.nowMs();
    const tracked = this.track(key, now);
    if (tracked.sampledPeriod === null && this.sample(key, tracked, this.periodAt(now)) === null) {
      return null;
    }
    return {
      load1: tracked.load1,
      load5: tracked.load5,
      load15: tracked.load15,
      running: tracked.running,
      total: tracked.total,
    };
  }

  /** Stop tracking `key` (e.g. its cgroup was removed). */
  forget(key: string): void {
    this.containers.delete(key);
  }

  get durationLastTickMs(): number {
    return this.counters.durationLastTickMs;
  }

  stats(): LoadavgSamplerStats {
    return { containers: this.containers.size, ...this.counters };
  }

  /** One sampling round; the timer calls it, tests may too. Never throws. */
  tick(): void {
    const startedMs = performance.now();
    const now = this.nowMs();
    const period = this.periodAt(now);
    this.counters.ticks++;

    for (const [key, tracked] of this.containers) {
      // Deleting the current entry while iterating a Map is safe.
      if (now - tracked.lastReadMs >= this.idleForgetMs) {
        this.containers.delete(key);
        this.counters.forgottenIdle++;
      }
    }

    // Never-sampled containers first, then the rest in Map order (least recently sampled).
    const due: string[] = [];
    for (const [key, tracked] of this.containers) {
      if (tracked.sampledPeriod === null) due.push(key);
    }
    for (const [key, tracked] of this.containers) {
      if (tracked.sampledPeriod !== null && tracked.sampledPeriod < period) due.push(key);
    }
    const chosen = due.slice(0, this.maxContainersPerTick);

    let truncated = 0;
    let errors = 0;
    for (const key of chosen) {
      const tracked = this.containers.get(key)!;
      try {
        if (this.sample(key, tracked, period)?.truncated === true) truncated++;
      } catch (error) {
        errors++;
        this.onError(key, error);
      }
      // Move to the end: the containers left out this tick come first next tick.
      if (this.containers.delete(key)) this.containers.set(key, tracked);
    }

    this.counters.sampledLastTick = chosen.length;
    this.counters.deferredLastTick = due.length - chosen.length;
    this.counters.truncatedLastTick = truncated;
    this.counters.errorsLastTick = errors;
    this.counters.durationLastTickMs = performance.now() - startedMs;
    this.onTick(this.stats());
  }

  private track(key: string, now: number): TrackedContainer {
    let tracked = this.containers.get(key);
    if (tracked === undefined) {
      tracked = {
        load1: 0,
        load5: 0,
        load15: 0,
        running: 0,
        total: 0,
        sampledPeriod: null,
        lastReadMs: now,
      };
      this.containers.set(key, tracked);
    }
    tracked.lastReadMs = now;
    return tracked;
  }

  /** Sampling periods elapsed since the sampler was made, by the clock. */
  private periodAt(now: number): number {
    return Math.floor((now - this.originMs) / this.intervalMs);
  }

  /** Count and fold; returns the counts. Null (and forgotten) when the cgroup is gone. */
  private sample(key: string, tracked: TrackedContainer, period: number): TaskCounts | null {
    const counts = this.countTasks(key);
    if (counts === null) {
      this.containers.delete(key);
      this.counters.forgottenGone++;
      return null;
    }
    // The kernel folds nr_running + nr_uninterruptible: R and D threads.
    const active = Math.max(0, counts.running + counts.blocked) * FIXED_1;
    if (tracked.sampledPeriod === null) {
      // Seeded with the instantaneous count (see the top of this file).
      tracked.load1 = active;
      tracked.load5 = active;
      tracked.load15 = active;
    } else {
      const missedPeriods = period - tracked.sampledPeriod;
      if (missedPeriods > 0) {
        tracked.load1 = calcLoadN(tracked.load1, EXP_1, active, missedPeriods);
        tracked.load5 = calcLoadN(tracked.load5, EXP_5, active, missedPeriods);
        tracked.load15 = calcLoadN(tracked.load15, EXP_15, active, missedPeriods);
      }
    }
    tracked.running = counts.running;
    tracked.total = counts.total;
    tracked.sampledPeriod = period;
    return counts;
  }
}
