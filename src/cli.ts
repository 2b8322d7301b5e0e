#!/usr/bin/env node
/**
 * The command line: `isolfs <mountpoint>` serves in the foreground (the way a container runs it);
 * `isolfs sysctl ...` reads and writes the two switches through a running mount.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Daemon, type DaemonOptions } from './daemon';
import { StartupError } from './startup';
import { NativeLoadError } from './fuse/native';
import { defaultViewsMountpoint } from './fuse/filesystem';
import { DEFAULT_HOOK_SOCKET } from './attach/hookServer';
import { createLogger, LOG_LEVELS, type LogLevel } from './log';
import { runSysctl } from './sysctl';

const VERSION: string = (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;

const USAGE = `Usage: isolfs [options] <mountpoint>
       isolfs sysctl [--mount DIR] [-a | KEY | -w KEY=VALUE ...]

Serves per-container /proc files (meminfo, cpuinfo, stat, vmstat, loadavg, uptime, swaps) and
/sys/devices/system/cpu/online over FUSE at <mountpoint>, computed from each reader's cgroup.

Options:
  --log-level LEVEL        fatal|error|warn|info|debug|trace|silent (default info)
  --state-dir DIR          where switch state persists (default /var/lib/isolfs)
  --host-isolated 0|1      kernel.stats_isolated on the first start (default 1; a persisted
                           value from 'isolfs sysctl -w' wins over it)
  --cgroup-root DIR        cgroup filesystem root (default /sys/fs/cgroup; for tests)
  --proc-root DIR          procfs root (default /proc; for tests)
  --sys-root DIR           sysfs root (default /sys; for tests)
  --loop thread|poll       FUSE request loop: a native receiving thread (default) or the session fd polled by libuv
  --loadavg-interval-ms N  load sampling interval (default 5000 as in the kernel; for tests)
  --no-join-cgroupns       do not join the host's cgroup namespace at start
  --http HOST:PORT         serve /healthz, /readyz and /metrics (Prometheus) there
                           (e.g. 0.0.0.0:9464; default: no endpoint)
  --attach PREFIX          attach the files into every container whose cgroup path starts
                           with PREFIX (e.g. /kubepods), while kernel.stats_isolated is 1;
                           repeatable
  --attach-interval-ms N   how often the full scan runs, the safety net beside event-driven
                           discovery (inotify on the cgroups under PREFIX attaches a new
                           container within tens of ms) and repair's periodic check (default 30000)
  --attach-concurrency N   attach helper runs at once (default 2 per CPU, 2..32)
  --hook-socket PATH       with --attach: the unix socket (root-only) on which the OCI hook
                           (isolfs-oci-hook, deploy/oci-hooks/) asks for a container to be
                           attached before its first instruction (default
                           /run/isolfs-hook/hook.sock)
  --no-hook-socket         do not serve the hook's socket
  --views-mountpoint DIR   with --attach or repair: where the per-container views (served from
                           the kernel's page cache) are mounted for the attach helper (default
                           /run/isolfs/views-<hash of the mountpoint>; created if missing)
  --no-repair              leave containers' dead isolfs mounts alone (default: replace them)
  --max-open-files N       open files the daemon keeps at once, all readers together; past it
                           an open gets ENFILE and a (rate-limited) warning (default 65536)
  --max-open-files-per-container N
                           open files one container may hold at once (default 4096, at most
                           --max-open-files); past it its opens get ENFILE and a warning, and
                           other containers still open theirs. A container is the attached
                           container (--attach, the OCI hook) the reader's cgroup is in, so
                           child cgroups made inside it share its share; a reader in none is
                           its own container per cgroup. PSI triggers: 32 per container, 1024
                           in all, counted the same way
  --watchdog-abort-ms N    a read through the mount unanswered for N ms, or the main thread
                           not running for N ms: abort our FUSE connections (no reader stays
                           stuck) and exit; /healthz fails from N/3 (default 30000). An
                           external umount exits at once.
  --version                print the version
  --help                   print this help
`;

function fail(message: string, code = 1): never {
  process.stderr.write(`isolfs: ${message}\n`);
  process.exit(code);
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  'log-level': { type: 'string', default: 'info' },
  'state-dir': { type: 'string', default: '/var/lib/isolfs' },
  'host-isolated': { type: 'string' },
  'cgroup-root': { type: 'string', default: '/sys/fs/cgroup' },
  'proc-root': { type: 'string', default: '/proc' },
  'sys-root': { type: 'string', default: '/sys' },
  loop: { type: 'string', default: 'thread' },
  'loadavg-interval-ms': { type: 'string', default: '5000' },
  'no-join-cgroupns': { type: 'boolean', default: false },
  http: { type: 'string' },
  attach: { type: 'string', multiple: true },
  'attach-interval-ms': { type: 'string', default: '30000' },
  'attach-concurrency': { type: 'string' },
  'no-repair': { type: 'boolean', default: false },
  'hook-socket': { type: 'string', default: DEFAULT_HOOK_SOCKET },
  'no-hook-socket': { type: 'boolean', default: false },
  'views-mountpoint': { type: 'string' },
  'max-open-files': { type: 'string', default: '65536' },
  'max-open-files-per-container': { type: 'string', default: '4096' },
  'watchdog-abort-ms': { type: 'string', default: '30000' },
} as const;

// The return type is inferred: parseArgs derives each value's type from OPTIONS.
function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
}

type Values = ReturnType<typeof parseCommandLine>['values'];

function main(argv: string[]): void {
  if (argv[0] === 'sysctl') {
    process.exitCode = runSysctl(argv.slice(1));
    return;
  }
  const { values, positionals } = parseCommandLine(argv);
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.version) {
    process.stdout.write(`isolfs ${VERSION}\n`);
    return;
  }
  if (positionals.length !== 1) fail(`expected one mountpoint\n${USAGE}`, 2);
  const logLevel = values['log-level'] as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) fail(`--log-level must be one of ${LOG_LEVELS.join(', ')}`, 2);
  serve(daemonOptions(values, positionals[0]), createLogger(logLevel));
}

/** The daemon's options from the flags; exits with status 2 and a one-line reason on a bad one. */
function daemonOptions(values: Values, mountpoint: string): DaemonOptions {
  const loop = values.loop;
  if (loop !== 'poll' && loop !== 'thread') fail('--loop must be poll or thread', 2);
  const hostIsolatedFlag = values['host-isolated'];
  if (hostIsolatedFlag !== undefined && hostIsolatedFlag !== '0' && hostIsolatedFlag !== '1') fail('--host-isolated must be 0 or 1', 2);
  const limits = checkedLimits(values);
  for (const prefix of values.attach ?? []) {
    if (!prefix.startsWith('/')) fail(`--attach expects a cgroup path starting with /, got "${prefix}"`, 2);
  }
  if (values.http !== undefined) {
    try {
      // biome-ignore lint/style/noCommonJs: http is loaded with --http only (docs/benchmarks.md "Memory").
      (require('./health/server') as typeof import('./health/server')).parseListenAddress(values.http);
    } catch (err) {
      fail((err as Error).message, 2);
    }
  }
  const mountpointPath = path.resolve(mountpoint);
  const viewsMountpoint = values['views-mountpoint'];
  return {
    mountpoint: mountpointPath,
    viewsMountpoint: viewsMountpoint === undefined ? defaultViewsMountpoint(mountpointPath) : path.resolve(viewsMountpoint),
    procRoot: values['proc-root'] as string,
    sysRoot: values['sys-root'] as string,
    cgroupRoot: values['cgroup-root'] as string,
    stateDir: values['state-dir'] as string,
    hostIsolated: hostIsolatedFlag === undefined ? undefined : hostIsolatedFlag === '1',
    loop,
    ...limits,
    joinHostCgroupNamespace: !values['no-join-cgroupns'] && values['proc-root'] === '/proc',
    http: values.http,
    attachPrefixes: values.attach ?? [],
    attachConcurrency: attachConcurrency(values['attach-concurrency'] as string | undefined),
    hookSocket: hookSocketOf(values),
    repairMounts: !values['no-repair'],
  };
}

/** --hook-socket, or null with --no-hook-socket. */
function hookSocketOf(values: Values): string | null {
  return values['no-hook-socket'] ? null : path.resolve(values['hook-socket'] as string);
}

type Limits = Pick<DaemonOptions, 'loadavgIntervalMs' | 'attachIntervalMs' | 'maxOpenFiles' | 'maxOpenFilesPerContainer' | 'watchdogAbortMs'>;

/** The numeric flags, each checked against its lower bound. */
function checkedLimits(values: Values): Limits {
  const loadavgIntervalMs = Number(values['loadavg-interval-ms']);
  if (!Number.isInteger(loadavgIntervalMs) || loadavgIntervalMs < 10) fail('--loadavg-interval-ms must be an integer >= 10', 2);
  const attachIntervalMs = Number(values['attach-interval-ms']);
  if (!Number.isInteger(attachIntervalMs) || attachIntervalMs < 100) fail('--attach-interval-ms must be an integer >= 100', 2);
  const maxOpenFiles = positiveInteger(values['max-open-files'] as string);
  if (maxOpenFiles === null) fail(`--max-open-files must be an integer >= 1\n${USAGE}`, 2);
  const perContainer = positiveInteger(values['max-open-files-per-container'] as string);
  if (perContainer === null) fail(`--max-open-files-per-container must be an integer >= 1\n${USAGE}`, 2);
  const maxOpenFilesPerContainer = Math.min(perContainer, maxOpenFiles);
  const watchdogAbortMs = positiveInteger(values['watchdog-abort-ms'] as string);
  if (watchdogAbortMs === null || watchdogAbortMs < 1000) fail(`--watchdog-abort-ms must be an integer >= 1000\n${USAGE}`, 2);
  return { loadavgIntervalMs, attachIntervalMs, maxOpenFiles, maxOpenFilesPerContainer, watchdogAbortMs };
}

/** Starts the daemon and wires signals, the watchdog and the health endpoint to one shutdown. */
function serve(options: DaemonOptions, logger: ReturnType<typeof createLogger>): void {
  let daemon: Daemon;
  try {
    daemon = Daemon.start(options, logger);
  } catch (err) {
    if (err instanceof StartupError || err instanceof NativeLoadError) fail(err.message);
    throw err;
  }
  const stopper = new Shutdown(daemon, logger);
  daemon.onFatal = () => stopper.stop('watchdog', 1);
  process.on('SIGINT', () => stopper.stop('SIGINT', 0));
  process.on('SIGTERM', () => stopper.stop('SIGTERM', 0));
  Promise.all([daemon.serveHealth(), daemon.serveHook()]).catch((err: unknown) => {
    void daemon.stop();
    fail(err instanceof Error ? err.message : String(err));
  });
  process.on('uncaughtException', (err) => {
    // Requests cannot get here (each is caught where it is answered); this is a bug elsewhere.
    // Unmount rather than leave a mount that answers nothing, then let the supervisor restart us.
    logger.fatal({ err: err.stack ?? String(err) }, 'uncaught exception: unmounting and exiting');
    stopper.stop('uncaughtException', 1);
  });
}

/** A decimal integer >= 1 (no exponents, signs or fractions), or null. */
function attachConcurrency(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = positiveInteger(text);
  if (n === null || n > 1024) fail('--attach-concurrency must be an integer from 1 to 1024', 2);
  return n;
}

function positiveInteger(text: string): number | null {
  if (!/^[0-9]{1,9}$/.test(text)) return null;
  const value = Number(text);
  return value >= 1 ? value : null;
}

/** How long a shutdown may take before we give up on it and exit non-zero. */
const SHUTDOWN_TIMEOUT_MS = 5000;

/**
 * One shutdown per process: a second signal while stopping exits at once (an operator pressing
 * ^C again, a kubelet's repeated TERM), and a stop that hangs past SHUTDOWN_TIMEOUT_MS exits 1.
 */
class Shutdown {
  private stopping = false;
  constructor(private readonly daemon: Daemon, private readonly logger: ReturnType<typeof createLogger>) {}

  stop(cause: string, code: number): void {
    if (this.stopping) {
      this.logger.warn({ cause }, 'second request to stop while shutting down: exiting now');
      process.exit(code === 0 ? 1 : code);
    }
    this.stopping = true;
    this.logger.info({ cause }, 'shutting down');
    setTimeout(() => {
      this.logger.error({ cause, timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'shutdown did not finish in time: exiting anyway');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    this.daemon.stop().then(
      () => process.exit(code),
      (err: unknown) => {
        this.logger.error({ err: String(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  }
}

main(process.argv.slice(2));
