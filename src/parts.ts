/**
 * How the daemon's parts are made (daemon.ts connects them): the load sampler and the backend,
 * each with its limits and the metrics and log lines it feeds.
 */
import { readActivityMark } from './cgroup/read';
import { parseCpuinfo } from './host/cpuinfo';
import { readBoundedText } from './host/boundedRead';
import { EnvOptOut } from './switches/envOptOut';
import { EnvironReader } from './switches/environReader';
import { LoadavgSampler } from './loadavg/sampler';
import { TASK_COUNTS_TTL_MS, TimedCache, countTasksNow, recentTaskCounts, type HostSources } from './files';
import type { ContainerRegistry } from './containers/registry';
import { RENDER_REUSE_MS, type IsolfsBackend } from './backend';
import { IsolfsBackendWithPressure } from './pressure/backend';
import { parseMeminfo } from './host/meminfo';
import { parseStat } from './host/stat';
import { parseLoadavg } from './host/loadavg';
import { parseCpuOnline } from './host/cpuOnline';
import { readSystemUnits } from './host/auxv';
import { RateLimitedLog, createLogger, type Logger, type LogLevel } from './log';
import type { Metrics } from './health/metrics';
import type { DaemonOptions, DaemonParts } from './daemon';

/** /proc/cpuinfo is ~1.5 KiB per CPU: this fits ~2,700 CPUs. */
const CPUINFO_MAX_BYTES = 4 * 1024 * 1024;

/**
 * An environ read through its thread takes ~40 µs (median), ~2 ms at the 99th percentile and at
 * worst ~34 ms at load average 50 on this 2-CPU machine (measured here): past 50 ms it is held up
 * by the process read (environRead.ts). A wait that load did cause costs an opted-out container
 * its opt-out until the answer is refreshed (ANSWER_TTL_MS), as the thread has returned by then.
 */
const ENVIRON_TIMEOUT_MS = 50;
/** Reader threads containers may leave stuck in the kernel (each a thread and ~8 MiB, measured here). */
const ENVIRON_MAX_STUCK = 4;

/** Counts each container's tasks for its load average, at most this many per read. */
const MAX_TASKS_PER_READ = 20_000;

export function newSampler(options: DaemonOptions, containers: ContainerRegistry, metrics: Metrics | null, logger: Logger): LoadavgSampler {
  const behind = new RateLimitedLog(60_000);
  return new LoadavgSampler({
    intervalMs: options.loadavgIntervalMs,
    onTick: (stats) => {
      metrics?.observeSamplerTick(stats.durationLastTickMs / 1000, stats.deferredLastTick);
      if (stats.deferredLastTick > 0 && behind.allow('deferred', Date.now())) {
        logger.warn({ deferred: stats.deferredLastTick, sampled: stats.sampledLastTick }, 'load sampler behind: some containers\' load averages were not sampled this tick (they catch up at their next sample)');
      }
    },
    containers: () => containers.all(),
    activityMark: (record) => {
      try {
        return readActivityMark(record.location);
      } catch {
        return null; // gone or unreadable: count, which says which
      }
    },
    // Counts are shared with /proc/stat renders (files.ts): a count either made in the last
    // TASK_COUNTS_TTL_MS serves the other, but never a sample's own count at the next sample (a
    // test's interval is shorter than that; half of it: a late slice's count, then an on-time tick).
    // Date.now(): the renders' clock.
    recentCount: (record) => recentTaskCounts(record, Date.now(), Math.min(TASK_COUNTS_TTL_MS, options.loadavgIntervalMs / 2)),
    countTasks: (record) => {
      try {
        return countTasksNow(record, { procRoot: options.procRoot, maxTasksPerRead: MAX_TASKS_PER_READ }, Date.now());
      } catch {
        return null; // the cgroup is gone: the registry's sweep drops it
      }
    },
  });
}

export function newBackend(parts: Omit<DaemonParts, 'filesystem' | 'views' | 'backend'>): IsolfsBackend {
  const { options, switches, metrics } = parts;
  // sysconf(_SC_CLK_TCK) and sysconf(_SC_PAGESIZE), read once: a 64 KiB-page arm64 kernel
  // counts /proc/vmstat in 64 KiB pages.
  const { userHz, pageSizeBytes } = readSystemUnits();
  const sources: HostSources = {
    procRoot: options.procRoot,
    sysRoot: options.sysRoot,
    userHz,
    pageSizeBytes,
    maxTasksPerRead: MAX_TASKS_PER_READ,
    sampler: parts.sampler,
    // /proc/cpuinfo is expensive for the kernel to produce (it asks every CPU for its clock)
    // and barely changes: one read per second serves every container.
    cpuinfoCache: new TimedCache(1000, () => parseCpuinfo(readBoundedText(options.procRoot, 'cpuinfo', CPUINFO_MAX_BYTES))),
    // Shared by every container's render for as long as a render itself is reused.
    hostMeminfoCache: new TimedCache(RENDER_REUSE_MS, () => parseMeminfo(readBoundedText(options.procRoot, 'meminfo'), options.procRoot)),
    hostStatCache: new TimedCache(RENDER_REUSE_MS, () => parseStat(readBoundedText(options.procRoot, 'stat'), options.procRoot)),
    hostLoadavgCache: new TimedCache(RENDER_REUSE_MS, () => parseLoadavg(readBoundedText(options.procRoot, 'loadavg'), options.procRoot)),
    hostOnlineCache: new TimedCache(RENDER_REUSE_MS, () => parseCpuOnline(readBoundedText(`${options.sysRoot}/devices/system/cpu`, 'online'), options.sysRoot)),
  };
  return new IsolfsBackendWithPressure({
    procRoot: options.procRoot,
    sysRoot: options.sysRoot,
    hierarchy: parts.hierarchy,
    switches,
    envOptOut: newEnvOptOut(options, metrics, parts.logger),
    sources,
    containers: parts.containers,
    logger: parts.logger,
    onRequest: metrics ? (file, result, seconds) => metrics.observeRequest(file, result, seconds) : undefined,
    onSwitchChange: metrics ? () => metrics.setSwitches(switches.hostIsolated, switches.optedOutCount) : undefined,
  });
}


function newEnvOptOut(options: DaemonOptions, metrics: Metrics | null, logger: Logger): EnvOptOut {
  const environ = new EnvironReader({
    procRoot: options.procRoot,
    timeoutMs: ENVIRON_TIMEOUT_MS,
    maxStuck: ENVIRON_MAX_STUCK,
    onEvent: (event) => {
      if (event.type === 'thread-error') logger.error({ err: event.err }, 'env opt-out: an environ reader thread failed (replaced at the next read)');
      else if (event.type === 'returned') logger.info({ pid: event.pid, stuckMs: event.stuckMs }, 'env opt-out: a stuck environ read returned; its thread ended');
      // At exit, after pino flushed its buffer for the last time: a logger that writes at once.
      else createLogger(logger.level as LogLevel, true).warn({ stuckThreads: event.stuck }, 'exiting with environ reader threads stuck in the kernel, which exit would wait for forever: ending with SIGKILL');
    },
  });
  metrics?.watchEnvironThreads(() => environ.stuckCount);
  return new EnvOptOut({
    procRoot: options.procRoot,
    environ,
    logger,
    timeoutMs: ENVIRON_TIMEOUT_MS,
    onUnanswered: metrics ? (why) => metrics.environUnanswered(why) : undefined,
  });
}
