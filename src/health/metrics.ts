/**
 * The daemon's Prometheus metrics: one prom-client Registry per Metrics instance (no global
 * registry, so tests and several daemons in one process never mix their numbers).
 *
 * `observeRequest` runs per FUSE request: ~0.4 µs (prom-client's counter ~0.16 µs, histogram
 * ~0.25 µs) against ~250 µs for the round trip. Anything costlier (pidusage) runs at scrape time.
 * Containers are counted from the container registry, which keeps no second list here.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pidusage from 'pidusage';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Request latency buckets, 10 µs .. 100 ms: the kernel answers /proc/meminfo in ~13 µs and a FUSE
 * round trip costs ~250 µs on these machines, so the interesting range is tens of µs to a few ms.
 */
export const REQUEST_DURATION_BUCKETS_SECONDS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/** Load sampler tick buckets, 100 µs .. 5 s: a tick walks every cgroup's tasks, so it grows with the node's size. */
export const SAMPLER_DURATION_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface MetricsOptions {
  /** Register prom-client's default process/Node metrics (process_*, nodejs_*). Default true. */
  defaultMetrics?: boolean;
  /** The process whose CPU and memory isolfs_process_* report. Default: this process. */
  pid?: number;
  /** How many containers the daemon keeps a record of (the registry's size), read at scrape time. */
  containersTracked?: () => number;
}

export class Metrics {
  readonly registry: Registry;

  private readonly requestsTotal: Counter<'file' | 'result'>;
  private readonly requestDuration: Histogram<'file'>;
  private readonly samplerDuration: Histogram<string>;
  private readonly samplerDeferred: Gauge<string>;
  private readonly hostIsolated: Gauge<string>;
  private readonly containersOptedOut: Gauge<string>;
  private readonly containersNewTotal: Counter<string>;
  private readonly environUnansweredTotal: Counter<'why'>;
  /** Where isolfs_env_optout_threads_stuck is read from (watchEnvironThreads). */
  private readonly environStuck = { count: (): number => 0 };

  /** Gauges valued by their collect() at scrape time; the registry holds them, this names them. */
  readonly scrapeTimeGauges: readonly Gauge<string>[];

  constructor(options: MetricsOptions = {}) {
    this.registry = new Registry();
    const pid = options.pid ?? process.pid;
    const registers = [this.registry];

    this.requestsTotal = new Counter({
      name: 'isolfs_requests_total',
      help: 'FUSE read requests answered, by served file and result',
      labelNames: ['file', 'result'] as const,
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'isolfs_request_duration_seconds',
      help: 'Time from receiving a FUSE read request to replying, by served file',
      labelNames: ['file'] as const,
      buckets: REQUEST_DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.containersNewTotal = new Counter({
      name: 'isolfs_containers_new_total',
      help: 'Container records created: a container read for the first time, or again after its record was dropped',
      registers,
    });
    this.scrapeTimeGauges = [
      containersTrackedGauge(registers, options.containersTracked ?? (() => 0)),
      environStuckGauge(registers, () => this.environStuck.count()),
      ...processGauges(registers, pid),
    ];
    this.samplerDuration = new Histogram({
      name: 'isolfs_loadavg_sampler_duration_seconds',
      help: 'Time one load-average sampler tick held the event loop, its slices summed (counting runnable tasks of every read cgroup)',
      buckets: SAMPLER_DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.samplerDeferred = new Gauge({
      name: 'isolfs_loadavg_containers_deferred',
      help: 'Containers whose load average was due in the last sampler tick but not sampled (the per-tick bound): their averages lag',
      registers,
    });
    this.hostIsolated = new Gauge({
      name: 'isolfs_switch_host_isolated',
      help: 'kernel.stats_isolated: 1 when containers get isolated views, 0 when everyone reads the host files',
      registers,
    });
    this.containersOptedOut = new Gauge({
      name: 'isolfs_containers_opted_out',
      help: 'Containers that set kernel.container_stats_isolated=0 and read the host files',
      registers,
    });

    this.environUnansweredTotal = environUnansweredCounter(registers);

    if (options.defaultMetrics ?? true) defaultMetrics(this.registry);
  }

  /** One answered request. `file` and `result` must come from small fixed sets (they are labels). */
  observeRequest(file: string, result: string, seconds: number): void {
    this.requestsTotal.inc({ file, result });
    this.requestDuration.observe({ file }, seconds);
  }

  /** The registry made a record for a container (its first read, or first since it was dropped). */
  containerTracked(): void {
    this.containersNewTotal.inc();
  }

  /** The current switch state: kernel.stats_isolated and how many containers opted out. */
  setSwitches(hostIsolated: boolean, optedOut: number): void {
    this.hostIsolated.set(hostIsolated ? 1 : 0);
    this.containersOptedOut.set(optedOut);
  }

  /** An env opt-out environ read went unanswered (src/switches/envOptOut.ts). */
  environUnanswered(why: 'timed-out' | 'no-thread'): void {
    this.environUnansweredTotal.inc({ why });
  }

  /** Where isolfs_env_optout_threads_stuck is read from at scrape time. */
  watchEnvironThreads(stuck: () => number): void {
    this.environStuck.count = stuck;
  }

  /** One load-average sampler tick took `seconds` and left `deferred` due containers unsampled. */
  observeSamplerTick(seconds: number, deferred: number): void {
    this.samplerDuration.observe(seconds);
    this.samplerDeferred.set(deferred);
  }

  /** The Prometheus text exposition of every metric. */
  metricsText(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * prom-client's process and Node metrics. Its event-loop delay histogram wakes the loop every
 * 10 ms: 100 wakeups a second cost 0.65% of a CPU in an otherwise idle daemon, more than its whole
 * idle goal (0.5%). Its timer is slowed to once a second, and its nodejs_eventloop_lag_{min,...,
 * p99}_seconds are served from a histogram of our own at 100 ms (0.08%), less that interval.
 */
function defaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1000 });
  for (const name of EVENT_LOOP_DELAY_STATS.keys()) registry.removeSingleMetric(name);
  eventLoopDelayGauges([registry]);
}

/** How often the event-loop delay is sampled: a stall of this long or longer is always seen. */
const EVENT_LOOP_SAMPLE_MS = 100;
const EVENT_LOOP_SAMPLE_NS = EVENT_LOOP_SAMPLE_MS * 1e6;

type IntervalHistogram = ReturnType<typeof monitorEventLoopDelay>;
/** A delay read from Node's histogram, which holds the interval between wakeups: less the interval. */
const beyondInterval = (ns: number): number => Math.max(0, ns - EVENT_LOOP_SAMPLE_NS) / 1e9;

/** prom-client's names for the event-loop delay statistics, and each one's value in seconds. */
const EVENT_LOOP_DELAY_STATS = new Map<string, (h: IntervalHistogram) => number>([
  ['nodejs_eventloop_lag_min_seconds', (h) => beyondInterval(h.min)],
  ['nodejs_eventloop_lag_max_seconds', (h) => beyondInterval(h.max)],
  ['nodejs_eventloop_lag_mean_seconds', (h) => beyondInterval(h.mean)],
  ['nodejs_eventloop_lag_stddev_seconds', (h) => h.stddev / 1e9],
  ['nodejs_eventloop_lag_p50_seconds', (h) => beyondInterval(h.percentile(50))],
  ['nodejs_eventloop_lag_p90_seconds', (h) => beyondInterval(h.percentile(90))],
  ['nodejs_eventloop_lag_p99_seconds', (h) => beyondInterval(h.percentile(99))],
]);

/**
 * The event loop's delay since the previous scrape. Node's histogram records the time between two
 * timer wakeups, interval included: the interval is taken off, so 0 means on time (prom-client
 * reported its own 10 ms interval as the delay of an idle loop).
 */
function eventLoopDelayGauges(registers: Registry[]): Gauge<string>[] {
  const histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_SAMPLE_MS });
  histogram.enable();
  let read = new Map<string, number>();
  // One reading per scrape for all of them (the registry collects in registration order, min
  // first), then a fresh histogram, as prom-client did.
  const readAll = (): void => {
    read = new Map();
    for (const [name, stat] of EVENT_LOOP_DELAY_STATS) read.set(name, histogram.count === 0 ? 0 : stat(histogram));
    histogram.reset();
  };
  return [...EVENT_LOOP_DELAY_STATS.keys()].map(
    (name, index) =>
      new Gauge({
        name,
        help: `Event loop delay since the previous scrape (beyond its ${EVENT_LOOP_SAMPLE_MS} ms sampling interval), ${name.replace(/^nodejs_eventloop_lag_|_seconds$/g, '')} (seconds)`,
        registers,
        collect() {
          if (index === 0) readAll();
          this.set(read.get(name) ?? 0);
        },
      }),
  );
}

function environUnansweredCounter(registers: Registry[]): Counter<'why'> {
  return new Counter({
    name: 'isolfs_env_optout_unanswered_total',
    help: "Environ reads for the env opt-out answered \"no declaration\" unread: timed-out (the container's first process kept the read from ending), no-thread (every reader thread stuck, or one starting)",
    labelNames: ['why'] as const,
    registers,
  });
}

function environStuckGauge(registers: Registry[], stuck: () => number): Gauge<string> {
  return new Gauge({
    name: 'isolfs_env_optout_threads_stuck',
    help: 'Environ reader threads stuck in a read that a container keeps from ending (at most 4; no reads past that)',
    registers,
    collect() {
      this.set(stuck());
    },
  });
}

function containersTrackedGauge(registers: Registry[], containersTracked: () => number): Gauge<string> {
  return new Gauge({
    name: 'isolfs_containers_seen',
    help: 'Containers the daemon keeps a record of: read in the last 10 minutes, or attached and running',
    registers,
    collect() {
      this.set(containersTracked());
    },
  });
}

function processGauges(registers: Registry[], pid: number): Gauge<string>[] {
  // pidusage keeps the previous sample per pid and reports CPU as the delta since it: a long
  // maxage keeps that history across slow scrape intervals (its default forgets after 60 s).
  // Both gauges share one sample per scrape: a second pidusage call right after the first would
  // measure CPU over a few microseconds.
  const pidusageOptions = { maxage: 15 * 60_000 };
  let lastSample: { atMs: number; status: Promise<pidusage.Status> } | null = null;
  const sampleProcess = (): Promise<pidusage.Status> => {
    const atMs = Date.now();
    if (lastSample === null || atMs - lastSample.atMs > 1000) lastSample = { atMs, status: pidusage(pid, pidusageOptions) };
    return lastSample.status;
  };
  return [
    new Gauge({
      name: 'isolfs_process_cpu_percent',
      help: 'CPU used by the isolfs process since the previous scrape, percent of one CPU (200 = two CPUs busy)',
      registers,
      async collect() {
        this.set((await sampleProcess()).cpu);
      },
    }),
    new Gauge({
      name: 'isolfs_process_memory_bytes',
      help: 'Resident memory of the isolfs process',
      registers,
      async collect() {
        this.set((await sampleProcess()).memory);
      },
    }),
  ];
}
