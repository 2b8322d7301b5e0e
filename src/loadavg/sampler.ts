/**
 * Per-container load averages, computed the way the kernel computes the host's: every 5 s,
 * count the container's runnable (R) and uninterruptible (D) threads and fold the count into
 * three exponential moving averages (kernelLoad.ts).
 *
 * Cost follows use. Only containers whose loadavg was read in the last `stopAfterUnreadMs`
 * (10 min) are sampled: a read gives the container's record (containers/registry.ts) load
 * state and stamps it; a tick drops the state of one unread that long, however long the record
 * itself lives (other files' reads or an attached subtree keep it), and its next read starts
 * afresh, like a first one. The registry's sweep drops the record, numbers and all, once the
 * container is idle or gone. The sampler keeps the algorithm and the tick; the record keeps
 * the numbers. A tick samples at most `maxContainersPerTick` containers, longest-unsampled
 * first (round robin), so a node with many containers cannot make one tick run long (LXCFS's
 * loadavg thread, which walks every container every 5 s, is reported freezing at 250+
 * containers). A container skipped by the bound catches up when it is next sampled: its
 * missed periods are folded in at once with the kernel's calc_load_n (the same catch-up the
 * kernel does after NO_HZ idle skipped sampling), assuming the count just read held
 * throughout. Periods are counted from the clock, not from timer callbacks, so a stalled event
 * loop is caught up the same way.
 *
 * The first read of a container not being sampled samples it at once (synchronously), and the
 * averages are SEEDED with that instantaneous count, not started at 0 as the kernel starts at
 * boot. The kernel starts at 0 because at boot nothing has run yet; a container met here has
 * usually been running for a long time before its first read (and after every daemon
 * restart), so its current count is a far better estimate of its recent average than 0 —
 * starting at 0 would show a busy container as idle for minutes (load15 needs ~45 min to get
 * within 5%). The price: a burst caught by the very first sample shows briefly in all three
 * averages. An idle container seeds at 0, exactly like the kernel.
 */
import type { TaskCounts } from '../cgroup/snapshot';
import type { ContainerRecord, LoadState } from '../containers/registry';
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
  /** The containers there are (the registry's records); those with load state are sampled. */
  containers: () => Iterable<ContainerRecord>;
  /**
   * Count the container's threads; null when its cgroup is gone (the registry's sweep then
   * drops it). Bounded by the reader itself (TaskCounts.truncated). May throw: a tick reports
   * it to `onError` and retries next tick; `get` lets it propagate to the request.
   */
  countTasks: (record: ContainerRecord) => TaskCounts | null;
  /**
   * A cheap mark of the container's activity (cgroup/read.ts readActivityMark), or null when it
   * has none. A sample that finds the mark of its last count reuses that count instead of
   * counting again: a container whose tasks all sleep costs two small reads per tick, not a
   * walk of its tasks. Default: none (every sample counts). May throw like countTasks.
   */
  activityMark?: (record: ContainerRecord) => string | null;
  /**
   * A count of the container made moments ago (a /proc/stat render's, kept in its record for
   * TASK_COUNTS_TTL_MS), or null. Used instead of counting again: a container whose /proc/stat is
   * read as often as its loadavg (a monitoring agent, top) costs its sampler nothing. Default: none.
   */
  recentCount?: (record: ContainerRecord) => TaskCounts | null;
  /** Sampling period; the EXP_* constants assume 5000. Other values are for tests only. */
  intervalMs?: number;
  /** At most this many countTasks calls per tick (default 1000). */
  maxContainersPerTick?: number;
  /**
   * At most this many countTasks calls at once (default 10): a tick samples the rest in later
   * slices (setImmediate), so that requests are answered between them.
   */
  maxContainersPerSlice?: number;
  /** A container whose loadavg is not read this long is no longer sampled (default 10 min). */
  stopAfterUnreadMs?: number;
  /** Monotonic clock in ms (default performance.now). */
  nowMs?: () => number;
  /** A countTasks failure during a tick (default: ignored; counted in stats). */
  onError?: (key: string, error: unknown) => void;
  /** After every tick, with its stats (the daemon feeds its metrics from this). */
  onTick?: (stats: LoadavgSamplerStats) => void;
}

export interface LoadavgSamplerStats {
  /** Containers with load state (their loadavg was read in the last stopAfterUnreadMs). */
  containers: number;
  /** Timer ticks run so far. */
  ticks: number;
  /** countTasks calls in the last tick. */
  sampledLastTick: number;
  /** Containers due in the last tick but left for later by maxContainersPerTick. */
  deferredLastTick: number;
  /** Samples in the last tick whose count stopped at the reader's task bound. */
  truncatedLastTick: number;
  /** Samples in the last tick that reused the last count (the activity mark had not moved). */
  unchangedLastTick: number;
  /** countTasks failures in the last tick. */
  errorsLastTick: number;
  /** Containers whose cgroup was gone in the last tick (left for the registry's sweep). */
  goneLastTick: number;
  /** Containers the last tick stopped sampling: their loadavg was not read for stopAfterUnreadMs. */
  unreadLastTick: number;
  /** Time the last tick held the event loop: its slices' wall time, summed. */
  durationLastTickMs: number;
  /** The longest slice of the last tick: how long a request may have waited for it. */
  longestSliceLastTickMs: number;
}

/**
 * A tick's bound. Counting costs ~0.17 ms a container (bench/full-node.sh: 17 ms for 100 at 500
 * containers), so 1000 a tick are ~3.4% of a CPU; containers beyond it wait for a later tick
 * (caught up with calc_load_n), and the metric isolfs_loadavg_containers_deferred and a log
 * line say how many fell behind.
 */
const DEFAULT_MAX_CONTAINERS_PER_TICK = 1000;
/**
 * A slice's bound: a slice runs on the event loop and holds every request that arrives meanwhile
 * (~2 ms for 10). Sampled in one go, 100 containers held them 17 ms: the bursts of reads over
 * 10 ms every 5 s that bench/full-node.sh showed.
 */
const DEFAULT_MAX_CONTAINERS_PER_SLICE = 10;

/** One tick's sampling, carried over its slices. */
interface Round {
  chosen: [ContainerRecord, LoadState][];
  next: number;
  period: number;
  due: number;
  tracked: number;
  unread: number;
  truncated: number;
  unchanged: number;
  errors: number;
  gone: number;
  busyMs: number;
  longestSliceMs: number;
}
/** The registry's idle time: a loadavg read that often keeps its container sampled. */
const DEFAULT_STOP_AFTER_UNREAD_MS = 10 * 60_000;

export class LoadavgSampler {
  private readonly containers: () => Iterable<ContainerRecord>;
  private readonly countTasks: (record: ContainerRecord) => TaskCounts | null;
  private readonly activityMark: (record: ContainerRecord) => string | null;
  private readonly recentCount: (record: ContainerRecord) => TaskCounts | null;
  private readonly intervalMs: number;
  private readonly maxContainersPerTick: number;
  private readonly maxContainersPerSlice: number;
  /** The tick whose slices are still being run; null between ticks. */
  private round: Round | null = null;
  private readonly stopAfterUnreadMs: number;
  private readonly nowMs: () => number;
  private readonly onError: (key: string, error: unknown) => void;
  private readonly onTick: (stats: LoadavgSamplerStats) => void;
  private readonly originMs: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly counters = {
    containers: 0,
    ticks: 0,
    sampledLastTick: 0,
    deferredLastTick: 0,
    truncatedLastTick: 0,
    unchangedLastTick: 0,
    errorsLastTick: 0,
    goneLastTick: 0,
    unreadLastTick: 0,
    durationLastTickMs: 0,
    longestSliceLastTickMs: 0,
  };

  constructor(options: LoadavgSamplerOptions) {
    this.containers = options.containers;
    this.countTasks = options.countTasks;
    this.activityMark = options.activityMark ?? (() => null);
    this.recentCount = options.recentCount ?? (() => null);
    this.intervalMs = options.intervalMs ?? LOAD_FREQ_MS;
    this.maxContainersPerTick = options.maxContainersPerTick ?? DEFAULT_MAX_CONTAINERS_PER_TICK;
    this.maxContainersPerSlice = options.maxContainersPerSlice ?? DEFAULT_MAX_CONTAINERS_PER_SLICE;
    if (!(this.maxContainersPerSlice >= 1)) throw new RangeError(`maxContainersPerSlice must be >= 1: ${this.maxContainersPerSlice}`);
    this.stopAfterUnreadMs = options.stopAfterUnreadMs ?? DEFAULT_STOP_AFTER_UNREAD_MS;
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.onError = options.onError ?? (() => undefined);
    this.onTick = options.onTick ?? (() => undefined);
    if (!(this.intervalMs > 0)) throw new RangeError(`intervalMs must be > 0: ${this.intervalMs}`);
    if (!(this.maxContainersPerTick >= 1)) {
      throw new RangeError(`maxContainersPerTick must be >= 1: ${this.maxContainersPerTick}`);
    }
    if (!(this.stopAfterUnreadMs > 0)) throw new RangeError(`stopAfterUnreadMs must be > 0: ${this.stopAfterUnreadMs}`);
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

  /**
   * The container's load; it is sampled until unread for stopAfterUnreadMs. A container not
   * being sampled is sampled now, so the first reply already holds its count. Null when its
   * cgroup is gone.
   */
  get(record: ContainerRecord): LoadSample | null {
    const nowMs = this.nowMs();
    const load = record.load ?? { load1: 0, load5: 0, load15: 0, running: 0, total: 0, sampledPeriod: null, lastReadMs: nowMs };
    record.load = load;
    load.lastReadMs = nowMs;
    if (load.sampledPeriod === null && this.sample(record, load, this.periodAt(nowMs)) === null) return null;
    return { load1: load.load1, load5: load.load5, load15: load.load15, running: load.running, total: load.total };
  }

  get durationLastTickMs(): number {
    return this.counters.durationLastTickMs;
  }

  stats(): LoadavgSamplerStats {
    return { ...this.counters };
  }

  /**
   * One sampling round; the timer calls it, tests may too. Never throws. Its first slice runs
   * now, the others each in a later turn of the event loop; a tick while the previous one's
   * slices still run does nothing (the next one catches up).
   */
  tick(): void {
    this.counters.ticks++;
    if (this.round !== null) return;
    const nowMs = this.nowMs();
    const period = this.periodAt(nowMs);
    const startedMs = performance.now();
    const { due, tracked, unread } = this.collectDue(nowMs, period);
    // Never-sampled containers first, then the least recently sampled (round robin).
    due.sort(([, a], [, b]) => (a.sampledPeriod ?? -1) - (b.sampledPeriod ?? -1));
    const chosen = due.slice(0, this.maxContainersPerTick);
    const busyMs = performance.now() - startedMs;
    this.round = {
      chosen, next: 0, period, due: due.length, tracked, unread, truncated: 0, unchanged: 0, errors: 0, gone: 0, busyMs, longestSliceMs: 0,
    };
    this.runSlice(this.round);
  }

  private runSlice(round: Round): void {
    const startedMs = performance.now();
    const end = Math.min(round.chosen.length, round.next + this.maxContainersPerSlice);
    for (; round.next < end; round.next++) {
      const [record, load] = round.chosen[round.next];
      try {
        const sampled = this.sample(record, load, round.period);
        if (sampled === null) round.gone++;
        else if (sampled === 'unchanged') round.unchanged++;
        else if (sampled.truncated) round.truncated++;
      } catch (error) {
        round.errors++;
        this.onError(record.key, error);
      }
    }
    const sliceMs = performance.now() - startedMs;
    round.busyMs += sliceMs;
    round.longestSliceMs = Math.max(round.longestSliceMs, sliceMs);
    if (round.next < round.chosen.length) {
      setImmediate(() => this.runSlice(round)).unref();
      return;
    }
    this.round = null;
    this.counters.containers = round.tracked;
    this.counters.sampledLastTick = round.chosen.length;
    this.counters.deferredLastTick = round.due - round.chosen.length;
    this.counters.truncatedLastTick = round.truncated;
    this.counters.unchangedLastTick = round.unchanged;
    this.counters.errorsLastTick = round.errors;
    this.counters.goneLastTick = round.gone;
    this.counters.unreadLastTick = round.unread;
    this.counters.durationLastTickMs = round.busyMs;
    this.counters.longestSliceLastTickMs = round.longestSliceMs;
    this.onTick(this.stats());
  }

  /** The containers not yet sampled in `period`; first ends the sampling of those unread too long. */
  private collectDue(nowMs: number, period: number): { due: [ContainerRecord, LoadState][]; tracked: number; unread: number } {
    const due: [ContainerRecord, LoadState][] = [];
    let tracked = 0;
    let unread = 0;
    for (const record of this.containers()) {
      const { load } = record;
      if (load === null) continue;
      if (nowMs - load.lastReadMs >= this.stopAfterUnreadMs) {
        record.load = null; // cost follows use: its next read starts afresh
        unread++;
        continue;
      }
      tracked++;
      if (load.sampledPeriod === null || load.sampledPeriod < period) due.push([record, load]);
    }
    return { due, tracked, unread };
  }

  /** Sampling periods elapsed since the sampler was made, by the clock. */
  private periodAt(now: number): number {
    return Math.floor((now - this.originMs) / this.intervalMs);
  }

  /**
   * Count (or take a count made moments ago, or reuse the last count when the activity mark has
   * not moved) and fold; returns the counts, or 'unchanged'. Null (numbers unchanged) when the
   * cgroup is gone.
   */
  private sample(record: ContainerRecord, load: LoadState, period: number): TaskCounts | 'unchanged' | null {
    const recent = this.recentCount(record);
    // The mark is read before the count: a change between the two moves the next mark.
    const mark = recent === null ? this.activityMark(record) : null;
    let active: number;
    let result: TaskCounts | 'unchanged';
    if (mark !== null && load.sampledPeriod !== null && mark === load.activityMark) {
      active = load.running + (load.blocked ?? 0);
      result = 'unchanged';
    } else {
      const counts = recent ?? this.countTasks(record);
      if (counts === null) return null;
      // The kernel folds nr_running + nr_uninterruptible: R and D threads.
      active = Math.max(0, counts.running + counts.blocked);
      load.running = counts.running;
      load.blocked = counts.blocked;
      load.total = counts.total;
      load.activityMark = counts.truncated ? null : mark;
      result = counts;
    }
    fold(load, active * FIXED_1, period);
    return result;
  }
}

/** Folds `active` (fixed point) into the averages for the periods since the last sample. */
function fold(load: LoadState, active: number, period: number): void {
  if (load.sampledPeriod === null) {
    // Seeded with the instantaneous count (see the top of this file).
    load.load1 = active;
    load.load5 = active;
    load.load15 = active;
  } else {
    const missedPeriods = period - load.sampledPeriod;
    if (missedPeriods > 0) {
      load.load1 = calcLoadN(load.load1, EXP_1, active, missedPeriods);
      load.load5 = calcLoadN(load.load5, EXP_5, active, missedPeriods);
      load.load15 = calcLoadN(load.load15, EXP_15, active, missedPeriods);
    }
  }
  load.sampledPeriod = period;
}
