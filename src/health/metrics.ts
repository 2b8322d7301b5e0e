/**
 * The daemon's Prometheus metrics: one prom-client Registry per Metrics instance (no global
 * registry, so tests and several daemons in one process never mix their numbers).
 *
 * The methods the daemon calls per FUSE request (`observeRequest`, `containerSeen`) are on the
 * hot path: together they cost ~0.6 µs here (prom-client's counter ~0.16 µs, histogram ~0.25 µs;
 * caching label children measured no faster), against ~250 µs for the FUSE round trip itself.
 * Anything costlier (pidusage, pruning the seen-containers map) runs when Prometheus scrapes.
 */
import pidusage from 'pidusage';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** How long a container counts as "seen recently" after its last request. */
export const CONTAINER_SEEN_WINDOW_MS = 5 * 60_000;

/**
 * Request latency buckets, 10 µs .. 100 ms: the kernel answers /proc/meminfo in ~13 µs and a FUSE
 * round trip costs ~250 µs on these machines, so the interesting range is tens of µs to a few ms.
 */
export const REQUEST_DURATION_BUCKETS_SECONDS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/** Load sampler tick buckets, 100 µs .. 5 s: a tick walks every cgroup's tasks, so it grows with the node's size. */
export const SAMPLER_DURATION_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Beyond this many distinct keys between two scrapes the map is pruned early, bounding memory. */
const MAX_TRACKED_CONTAINERS = 100_000;

export interface MetricsOptions {
  /** Register prom-client's default process/Node metrics (process_*, nodejs_*). Default true. */
  defaultMetrics?: boolean;
  /** The process whose CPU and memory isolfs_process_* report. Default: this process. */
  pid?: number;
  /** Clock for the seen-containers window; tests pass a fake one. */
  nowMs?: () => number;
}

export class Metrics {
  readonly registry: Registry;

  private readonly requestsTotal: Counter<'file' | 'result'>;
  private readonly requestDuration: Histogram<'file'>;
  private readonly samplerDuration: Histogram<string>;
  private readonly hostIsolated: Gauge<string>;
  private readonly containersOptedOut: Gauge<string>;
  private readonly containersNewTotal: Counter<string>;

  /** container key -> last time (ms) it made a request. */
  private readonly lastSeenMs = new Map<string, number>();
  private readonly nowMs: () => number;
  /** Gauges valued by their collect() at scrape time; the registry holds them, this names them. */
  readonly scrapeTimeGauges: readonly Gauge<string>[];

  constructor(options: MetricsOptions = {}) {
    this.registry = new Registry();
    this.nowMs = options.nowMs ?? Date.now;
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
      help: 'Containers that made a request for the first time (or the first time after dropping out of the seen window)',
      registers,
    });
    this.scrapeTimeGauges = [containersSeenGauge(registers, this.lastSeenMs, this.nowMs), ...processGauges(registers, pid)];
    this.samplerDuration = new Histogram({
      name: 'isolfs_loadavg_sampler_duration_seconds',
      help: 'Duration of one load-average sampler tick (counting runnable tasks of every cgroup)',
      buckets: SAMPLER_DURATION_BUCKETS_SECONDS,
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

    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** One answered request. `file` and `result` must come from small fixed sets (they are labels). */
  observeRequest(file: string, result: string, seconds: number): void {
    this.requestsTotal.inc({ file, result });
    this.requestDuration.observe({ file }, seconds);
  }

  /** A request came from the container identified by `key` (any stable string, e.g. its cgroup). */
  containerSeen(key: string): void {
    const now = this.nowMs();
    const previous = this.lastSeenMs.get(key);
    if (previous === undefined || now - previous > CONTAINER_SEEN_WINDOW_MS) this.containersNewTotal.inc();
    this.lastSeenMs.set(key, now);
    if (this.lastSeenMs.size > MAX_TRACKED_CONTAINERS && pruneSeen(this.lastSeenMs, now) > MAX_TRACKED_CONTAINERS) {
      // Still too many live keys: forget them all rather than prune on every request.
      this.lastSeenMs.clear();
    }
  }

  /** The current switch state: kernel.stats_isolated and how many containers opted out. */
  setSwitches(hostIsolated: boolean, optedOut: number): void {
    this.hostIsolated.set(hostIsolated ? 1 : 0);
    this.containersOptedOut.set(optedOut);
  }

  /** One load-average sampler tick took `seconds`. */
  observeSamplerTick(seconds: number): void {
    this.samplerDuration.observe(seconds);
  }

  /** The Prometheus text exposition of every metric. */
  metricsText(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function containersSeenGauge(registers: Registry[], lastSeenMs: Map<string, number>, nowMs: () => number): Gauge<string> {
  return new Gauge({
    name: 'isolfs_containers_seen',
    help: `Distinct containers that made a request in the last ${CONTAINER_SEEN_WINDOW_MS / 1000} s`,
    registers,
    collect() {
      this.set(pruneSeen(lastSeenMs, nowMs()));
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

/** Drops keys older than the window and returns how many are left. */
function pruneSeen(lastSeenMs: Map<string, number>, nowMs: number): number {
  for (const [key, seenMs] of lastSeenMs) {
    if (nowMs - seenMs > CONTAINER_SEEN_WINDOW_MS) lastSeenMs.delete(key);
  }
  return lastSeenMs.size;
}
