/**
 * What the conformance suite asks real programs inside a container, and what each should say
 * under the container's limits. A probe runs a program, picks the figure it reports, and
 * compares it with the figure the limits call for.
 *
 * - kind "isolfs": the program reads files isolfs serves; a wrong figure fails the suite.
 * - kind "limit": the program asks the kernel something no file system can answer
 *   (sched_getaffinity(2), sysinfo(2)): printed as such, never counted as a pass.
 * - kind "gap": the program reads files isolfs does not serve; printed as a gap, not a pass
 *   (none now: htop's CPU count was one until the CPU directory was served).
 * - bindGap: in bind mode the file cannot be bound at all (runc refuses a bind over /proc/vmstat
 *   at creation), so only attach mode is held to the expectation.
 */
import fs from 'node:fs';
import { FIRST_MEMINFO, FIRST_ONLINE, FIRST_READ_FILE, FIRST_VMSTAT } from './firstReads';
import type { Container } from './podman';

export interface Limits {
  memoryBytes: number;
  /** CPUs the container should see: min(cpuset size, ceil(quota/period)). */
  cpus: number;
  /** CPUs in the container's cpuset (what sched_getaffinity(2) gives). */
  cpusetCpus: number;
  hostCpus: number;
  hostMemTotalKb: number;
  /** When `podman run -d` returned. */
  startedAtMs: number;
}

export interface Probe {
  program: string;
  /** What it reads, as the table prints it. */
  reads: string;
  kind: 'isolfs' | 'limit' | 'gap';
  /** Why, for limit and gap rows. */
  note?: string;
  bindGap?: string;
  /**
   * A read at the container's first instruction: in attach mode without the hook, discovery races
   * the init, so the figure is shown (own or the host's) but never counted as a pass or a failure.
   */
  attachRace?: true;
  /** Runs the program; resolves with its output. */
  run: (c: Container) => Promise<string>;
  /** The figure it reports, from its output (null: not found). */
  report: (output: string) => string | null;
  expected: (l: Limits) => string;
  /** Default: the report equals the expectation. */
  ok?: (reported: string, l: Limits) => boolean;
}

const MIB = 1 << 20;
/** Attach lands within 200 ms of a container's start (event-driven discovery); 10 s is a loud bound. */
export const ATTACH_BOUND_MS = 10_000;

/** Waits until the container reads its own MemTotal (the daemon attached); ms since its start. */
export async function waitForAttach(container: Container, memoryBytes: number): Promise<number> {
  while (true) {
    const meminfo = await container.sh('cat /proc/meminfo', 10_000);
    const kb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo.stdout)?.[1]);
    const elapsed = Date.now() - container.startedAtMs;
    if (kb * 1024 === memoryBytes) return elapsed;
    if (elapsed > ATTACH_BOUND_MS) throw new Error(`not attached ${elapsed} ms after the container started: MemTotal ${kb} kB`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function output(c: Container, command: string): Promise<string> {
  const r = await c.sh(command);
  if (r.code !== 0) throw new Error(`\`${command}\` exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function cmd(command: string): (c: Container) => Promise<string> {
  return (c) => output(c, command);
}

function match(re: RegExp): (out: string) => string | null {
  return (out) => re.exec(out)?.[1] ?? null;
}

const NODE = (expr: string): string => `node -e 'const os = require("os"); console.log(${expr})'`;
const PY = (expr: string): string => `python3 -c 'import os; print(${expr})'`;

/** Threads on the host now (this test process reads the host's /proc/loadavg). */
function hostThreads(): number {
  return Number(/\/(\d+)/.exec(fs.readFileSync('/proc/loadavg', 'utf8'))?.[1]);
}

function formatTime(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

export const PROBES: Probe[] = [
  {
    program: 'the container\'s first instruction (its init: `cat /proc/meminfo`)', reads: '/proc/meminfo', kind: 'isolfs', attachRace: true,
    run: cmd(`cat ${FIRST_READ_FILE}`), report: FIRST_MEMINFO, expected: (l) => String(l.memoryBytes / 1024),
  },
  {
    program: 'the container\'s first instruction (its init: `cat /proc/vmstat`) nr_free_pages', reads: '/proc/vmstat', kind: 'isolfs', attachRace: true,
    bindGap: 'the host\'s: runc refuses the bind',
    run: cmd(`cat ${FIRST_READ_FILE}`), report: FIRST_VMSTAT,
    expected: (l) => `<= ${l.memoryBytes / 4096} pages`, ok: (r, l) => Number(r) <= l.memoryBytes / 4096,
  },
  {
    program: 'the container\'s first instruction (its init: `cat /sys/devices/system/cpu/online`) CPUs', reads: '/sys/devices/system/cpu/online', kind: 'isolfs', attachRace: true,
    run: cmd(`cat ${FIRST_READ_FILE}`), report: FIRST_ONLINE, expected: (l) => String(l.cpus),
  },
  {
    program: '`free` (procps)', reads: '/proc/meminfo', kind: 'isolfs',
    run: cmd('free -k'), report: match(/^Mem:\s+(\d+)/m), expected: (l) => String(l.memoryBytes / 1024),
  },
  {
    program: '`top -bn1` memory (procps)', reads: '/proc/meminfo', kind: 'isolfs',
    run: cmd('top -bn1 | head -5'), report: match(/MiB Mem :\s*([\d.]+) total/), expected: (l) => (l.memoryBytes / MIB).toFixed(1),
  },
  {
    program: '`top -1 -bn1` per-CPU lines (procps)', reads: '/proc/stat', kind: 'isolfs',
    run: cmd('top -1 -bn1 | head -12'), report: (out) => String(out.split('\n').filter((l) => /^%Cpu\d+/.test(l)).length),
    expected: (l) => String(l.cpus),
  },
  {
    program: '`vmstat -s` total memory (procps)', reads: '/proc/meminfo', kind: 'isolfs',
    run: cmd('vmstat -s'), report: match(/(\d+) K total memory/), expected: (l) => String(l.memoryBytes / 1024),
  },
  {
    program: '`vmstat` free (procps)', reads: '/proc/meminfo, /proc/vmstat, /proc/stat', kind: 'isolfs',
    run: cmd('vmstat'), report: (out) => out.trim().split('\n')[2]?.trim().split(/\s+/)[3] ?? null,
    expected: (l) => `<= ${l.memoryBytes / 1024}`, ok: (r, l) => Number(r) <= l.memoryBytes / 1024,
  },
  {
    program: '`/proc/vmstat` nr_free_pages (what vmstat-style collectors read)', reads: '/proc/vmstat', kind: 'isolfs',
    bindGap: 'the host\'s: runc refuses the bind',
    run: cmd('cat /proc/vmstat'), report: match(/^nr_free_pages (\d+)/m),
    expected: (l) => `<= ${l.memoryBytes / 4096} pages`, ok: (r, l) => Number(r) <= l.memoryBytes / 4096,
  },
  {
    program: '`uptime -s` (procps)', reads: '/proc/uptime', kind: 'isolfs',
    run: cmd('uptime -s'), report: (out) => (out.trim() ? out.trim().slice(11) : null),
    expected: (l) => `${formatTime(l.startedAtMs)} ± 10 s (container start)`,
    ok: (r, l) => Math.abs(Date.parse(`${new Date(l.startedAtMs).toISOString().slice(0, 10)}T${r}Z`) - l.startedAtMs) <= 10_000,
  },
  {
    // The load itself is whatever the container's threads did (node's start-up alone runs ~7):
    // held to agreeing with the file, whose thread count (next row) shows whose load it is.
    program: '`uptime` load average (procps)', reads: '/proc/loadavg', kind: 'isolfs',
    run: cmd('uptime; cat /proc/loadavg'),
    report: (out) => {
      const shown = /load average: ([\d.]+)/.exec(out)?.[1];
      const file = /^([\d.]+) [\d.]+ [\d.]+ \d+\/\d+/m.exec(out)?.[1];
      return shown === undefined || file === undefined ? null : `${shown} (file: ${file})`;
    },
    expected: () => `the file's 1-min average ± 0.5 (the host's: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]})`,
    ok: (r) => { const [shown, file] = (r.match(/[\d.]+/g) ?? []).map(Number); return Math.abs(shown - file) <= 0.5; },
  },
  {
    program: '`/proc/loadavg` threads (running/total)', reads: '/proc/loadavg', kind: 'isolfs',
    run: cmd('cat /proc/loadavg; ps -eL --no-headers | wc -l'),
    report: (out) => {
      const total = /^[\d.]+ [\d.]+ [\d.]+ \d+\/(\d+)/m.exec(out)?.[1];
      const ps = /^(\d+)$/m.exec(out)?.[1];
      return total === undefined || ps === undefined ? null : `${total} (ps -eL: ${ps})`;
    },
    // The count is the load sampler's last (every few seconds), so it trails `ps` by what the
    // probes start; the point is whose threads: a container's few, never the host's hundreds.
    expected: () => `<= 32, its own (the host: ${hostThreads()})`,
    ok: (r) => Number(/\d+/.exec(r)?.[0]) <= 32 && hostThreads() > 32,
  },
  {
    program: '`getconf _NPROCESSORS_ONLN` (glibc sysconf)', reads: '/sys/devices/system/cpu/online', kind: 'isolfs',
    run: cmd('getconf _NPROCESSORS_ONLN'), report: match(/^(\d+)/), expected: (l) => String(l.cpus),
  },
  {
    program: '`getconf _NPROCESSORS_CONF` (glibc sysconf; the JVM\'s count)', reads: '/sys/devices/system/cpu/ (possible, cpuN)', kind: 'isolfs',
    run: cmd('getconf _NPROCESSORS_CONF'), report: match(/^(\d+)/), expected: (l) => String(l.cpus),
  },
  {
    program: 'Python `os.cpu_count()`', reads: '/sys/devices/system/cpu/online (sysconf)', kind: 'isolfs',
    run: cmd(PY('os.cpu_count()')), report: match(/^(\d+)/), expected: (l) => String(l.cpus),
  },
  {
    program: 'Node `os.cpus().length`', reads: '/proc/stat', kind: 'isolfs',
    run: cmd(NODE('os.cpus().length')), report: match(/^(\d+)/), expected: (l) => String(l.cpus),
  },
  {
    program: 'Node `os.totalmem()`', reads: '/proc/meminfo', kind: 'isolfs',
    run: cmd(NODE('os.totalmem()')), report: match(/^(\d+)/), expected: (l) => String(l.memoryBytes),
  },
  {
    program: 'nginx `worker_processes auto` (workers started)', reads: '/sys/devices/system/cpu/online (sysconf)', kind: 'isolfs',
    run: cmd("nginx && sleep 1 && ps -eo args | grep -c '^nginx: worker'; nginx -s stop"), report: match(/^(\d+)/),
    expected: (l) => String(l.cpus),
  },
  {
    program: '`grep -c ^processor /proc/cpuinfo` (JVMs, build tools)', reads: '/proc/cpuinfo', kind: 'isolfs',
    run: cmd('grep -c ^processor /proc/cpuinfo'), report: match(/^(\d+)/), expected: (l) => String(l.cpus),
  },
  {
    program: 'htop Mem meter', reads: '/proc/meminfo', kind: 'isolfs',
    run: (c) => c.screen('htop', 3000), report: match(/Mem\[[^\]]*\/([\d.]+[KMGT])\]/), expected: (l) => `${l.memoryBytes / MIB}M`,
  },
  {
    program: 'htop CPU meters', reads: '/proc/stat, /sys/devices/system/cpu/cpuN/online', kind: 'isolfs',
    // One meter per CPU, numbered ("0[", "1["), or a single "CPU[" when it sees one.
    run: (c) => c.screen('htop', 3000), report: (out) => String(out.split('\n').filter((l) => /^\s*(\d+|CPU)\[/.test(l)).length),
    expected: (l) => String(l.cpus),
  },
  {
    // `free` right after the allocation and again 2.5 s later: the check is on the later one, the
    // table shows both (seen once in attach mode: +74 of 100 MiB right away).
    program: 'a 100 MiB allocation in `free` (Python holds it)', reads: '/proc/meminfo', kind: 'isolfs',
    run: cmd(`free -k; ${PY('[__import__("subprocess").run(["free", "-k"]), __import__("time").sleep(2.5), __import__("subprocess").run(["free", "-k"])] if (b := b"x" * (100 << 20)) else 0')}`),
    report: (out) => {
      const used = [...out.matchAll(/^Mem:\s+\d+\s+(\d+)/gm)].map((m) => Number(m[1]));
      const mib = (kb: number): number => Math.round((kb - used[0]) / 1024);
      return used.length === 3 ? `+${mib(used[2])} MiB used (at once: +${mib(used[1])})` : null;
    },
    expected: () => '+100 MiB used (90-140)',
    ok: (r) => { const mib = Number(/\d+/.exec(r)?.[0]); return mib >= 90 && mib <= 140; },
  },
  {
    program: '`nproc` (coreutils)', reads: 'sched_getaffinity(2)', kind: 'limit', note: 'a syscall: the cpuset, not the quota',
    run: cmd('nproc'), report: match(/^(\d+)/), expected: (l) => String(l.cpusetCpus),
  },
  {
    program: 'Python `os.sched_getaffinity(0)`', reads: 'sched_getaffinity(2)', kind: 'limit', note: 'a syscall: the cpuset, not the quota',
    run: cmd(PY('len(os.sched_getaffinity(0))')), report: match(/^(\d+)/), expected: (l) => String(l.cpusetCpus),
  },
  {
    program: 'Node `os.availableParallelism()`', reads: 'sched_getaffinity(2)', kind: 'limit', note: 'a syscall: the cpuset, not the quota',
    run: cmd(NODE('os.availableParallelism()')), report: match(/^(\d+)/), expected: (l) => String(l.cpusetCpus),
  },
  {
    program: 'busybox `free`', reads: 'sysinfo(2)', kind: 'limit', note: 'a syscall: the host\'s RAM',
    run: cmd('busybox free'), report: match(/^Mem:\s+(\d+)/m), expected: (l) => String(l.hostMemTotalKb),
    ok: (r, l) => Math.abs(Number(r) - l.hostMemTotalKb) <= l.hostMemTotalKb / 50,
  },
];
