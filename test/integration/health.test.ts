/**
 * The --http endpoint of the real daemon: /healthz reads through the real mount, /metrics counts
 * real requests and follows the switches.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { isMounted, startDaemon, type DaemonHandle } from '../helpers/daemon';

async function get(port: number, url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${url}`);
  return { status: res.status, body: await res.text() };
}

function metricValue(text: string, line: RegExp): number {
  const m = line.exec(text);
  if (!m) throw new Error(`metric ${line} missing from:\n${text.slice(0, 2000)}`);
  return Number(m[1]);
}

/** The port the daemon's --http endpoint says it listens on (from its log). */
async function listeningPort(daemon: DaemonHandle): Promise<number> {
  const deadline = Date.now() + 5000;
  const listeningLine = (): string | undefined => daemon.logs.find((l) => l.includes('health and metrics endpoint listening'));
  let listening = listeningLine();
  while (listening === undefined) {
    if (Date.now() > deadline) throw new Error(`no listening line:\n${daemon.logs.join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
    listening = listeningLine();
  }
  return (JSON.parse(listening) as { port: number }).port;
}

describe('--http health and metrics', () => {
  let daemon: DaemonHandle;
  let port: number;

  beforeAll(async () => {
    daemon = await startDaemon({ args: ['--http', '127.0.0.1:0'] });
    port = await listeningPort(daemon);
  });

  afterAll(async () => {
    await daemon?.cleanup();
  });

  it('answers /healthz with a real read through the mount, and /readyz', async () => {
    expect(await get(port, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await get(port, '/readyz')).toEqual({ status: 200, body: 'ok\n' });
    expect((await get(port, '/nope')).status).toBe(404);
  });

  it('counts requests by file and result, and reports the switches and its own memory', async () => {
    const before = (await get(port, '/metrics')).body;
    const countBefore = /isolfs_requests_total\{file="\/proc\/cpuinfo",result="ok"\} (\d+)/.exec(before)?.[1] ?? '0';
    for (let i = 0; i < 3; i++) fs.readFileSync(path.join(daemon.mountpoint, 'proc/cpuinfo'));
    const after = (await get(port, '/metrics')).body;
    expect(metricValue(after, /isolfs_requests_total\{file="\/proc\/cpuinfo",result="ok"\} (\d+)/)).toBe(Number(countBefore) + 3);
    expect(metricValue(after, /isolfs_request_duration_seconds_count\{file="\/proc\/cpuinfo"\} (\d+)/)).toBeGreaterThanOrEqual(3);
    expect(metricValue(after, /^isolfs_switch_host_isolated (\d+)/m)).toBe(1);
    expect(metricValue(after, /^isolfs_process_memory_bytes (\d+)/m)).toBeGreaterThan(10 * 1024 * 1024);
    expect(after).toMatch(/^isolfs_loadavg_sampler_duration_seconds_count \d+/m);

    fs.writeFileSync(path.join(daemon.mountpoint, 'proc/sys/kernel/stats_isolated'), '0');
    try {
      expect(metricValue((await get(port, '/metrics')).body, /^isolfs_switch_host_isolated (\d+)/m)).toBe(0);
    } finally {
      fs.writeFileSync(path.join(daemon.mountpoint, 'proc/sys/kernel/stats_isolated'), '1');
    }
  });

  it('goes away with the daemon on kill -9 (so the liveness probe fails and the pod restarts)', async () => {
    await daemon.kill9();
    // The daemon is gone, so nothing listens: the probe fails, which is what restarts the pod.
    await expect(get(port, '/healthz')).rejects.toThrow();
  });
});

describe('the watchdog on the real daemon', () => {
  let daemon: DaemonHandle;
  afterAll(async () => { await daemon?.cleanup(); });

  async function startWithPort(): Promise<number> {
    daemon = await startDaemon({ args: ['--http', '127.0.0.1:0'] });
    return listeningPort(daemon);
  }

  it('notices an external umount -l: logs why, answers 503, and exits non-zero within seconds', async () => {
    const port = await startWithPort();
    expect((await get(port, '/readyz')).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => daemon.process.on('close', (exitCode) => resolve(exitCode)));
    execFileSync('umount', ['-l', daemon.mountpoint]);
    const started = Date.now();
    const answers: number[] = [];
    let code: number | null | undefined;
    void exited.then((c) => { code = c; });
    while (code === undefined && Date.now() - started < 10_000) {
      try {
        answers.push((await get(port, '/healthz')).status, (await get(port, '/readyz')).status);
      } catch { /* not listening any more: the daemon is on its way out */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    const exitMs = Date.now() - started;
    expect(code, daemon.logs.join('\n')).not.toBe(0);
    expect(code).not.toBeUndefined();
    expect(exitMs).toBeLessThan(5000);
    expect(answers).toContain(503);
    const why = daemon.logs.find((l) => l.includes('watchdog: unhealthy'));
    expect(why, daemon.logs.join('\n')).toMatch(/mount is gone from mountinfo/);
    expect(daemon.logs.some((l) => l.includes('exiting so the supervisor restarts us'))).toBe(true);
    console.log(`external umount noticed and exited (code ${code}) after ${exitMs} ms; answers ${answers.join(',')}`);
  });

  it('on SIGTERM logs "unmounted" and exits 0 promptly, even with a file held open', async () => {
    await daemon?.cleanup();
    const port = await startWithPort();
    expect((await get(port, '/healthz')).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => daemon.process.on('close', (exitCode) => resolve(exitCode)));
    const held = fs.openSync(path.join(daemon.mountpoint, 'proc/meminfo'), 'r');
    const started = Date.now();
    daemon.process.kill('SIGTERM');
    try {
      expect(await exited).toBe(0);
    } finally {
      try { fs.closeSync(held); } catch { /* ENOTCONN: the connection went with the daemon; the fd is closed all the same */ }
    }
    expect(Date.now() - started).toBeLessThan(5000);
    expect(daemon.logs.some((l) => l.includes('"msg":"unmounted"'))).toBe(true);
    expect(isMounted(daemon.mountpoint)).toBe(false);
  });
});

/** Stops one thread (the daemon's main thread) with ptrace, leaving its other threads running. */
const STOP_THREAD_PY = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
tid = int(sys.argv[1])
if libc.ptrace(0x4206, tid, None, None) != 0: sys.exit('PTRACE_SEIZE failed: errno %d' % ctypes.get_errno())
if libc.ptrace(0x4207, tid, None, None) != 0: sys.exit('PTRACE_INTERRUPT failed: errno %d' % ctypes.get_errno())
print('stopped', flush=True)
# Leave it stopped; a traced task that dies is reaped by its tracer first, so wait for that.
while True:
    pid, status = os.waitpid(tid, 0x40000000)  # __WALL
    if os.WIFEXITED(status) or os.WIFSIGNALED(status): break
`;

describe('the watchdog after the whole process was stopped (SIGSTOP, the cgroup freezer, a checkpoint)', () => {
  let daemon: DaemonHandle;
  afterAll(async () => {
    // Continued before cleanup (a stopped daemon cannot end); it may have ended already.
    if (daemon?.process.exitCode === null && daemon.process.signalCode === null) daemon.process.kill('SIGCONT');
    await daemon?.cleanup();
  });

  it('does not take the pause for a stuck main thread: the daemon lives on and answers', async () => {
    daemon = await startDaemon({ args: ['--watchdog-abort-ms', '3000'] });
    const pid = daemon.process.pid ?? 0;
    process.kill(pid, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 4500)); // longer than the limit: every thread stood still
    process.kill(pid, 'SIGCONT');
    await new Promise((r) => setTimeout(r, 2000)); // the deadman's looks and the main thread's beats resume
    expect(daemon.process.exitCode, daemon.logs.join('\n')).toBeNull();
    expect(daemon.process.signalCode).toBeNull();
    expect(fs.readFileSync(path.join(daemon.mountpoint, 'proc/meminfo'), 'utf8')).toMatch(/^MemTotal:/);
    expect(daemon.logs.filter((l) => l.includes('"level":60'))).toEqual([]);
  }, 30_000);
});

describe('the watchdog when the main thread is stuck', () => {
  let daemon: DaemonHandle;
  let stopper: ChildProcess | undefined;
  afterAll(async () => {
    if (stopper?.exitCode === null) stopper.kill('SIGKILL');
    await daemon?.cleanup();
  });

  it('aborts our FUSE connection (a waiting reader gets an error, not a hang) and ends the process', async () => {
    // With --attach, so the container-views tree is mounted too, on a connection of its own.
    daemon = await startDaemon({ args: ['--watchdog-abort-ms', '3000', '--attach', '/isolfs-health-no-such-prefix-'] });
    // Our connections' numbers in fusectl are their devices' minors.
    const minorOf = (dir: string): number => { const dev = fs.statSync(dir).dev; return (dev & 0xff) | ((dev >> 12) & 0xfff00); };
    const minors = [minorOf(daemon.mountpoint), minorOf(daemon.viewsMountpoint)];
    expect(minors[1], 'the views tree is a connection of its own').not.toBe(minors[0]);
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => daemon.process.on('close', (code, signal) => resolve({ code, signal })));
    // The main thread (tid = pid) answers every FUSE request: with it stopped, nothing is answered.
    stopper = spawn('python3', ['-c', STOP_THREAD_PY, String(daemon.process.pid)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      stopper?.stdout?.once('data', () => resolve());
      stopper?.once('exit', (code) => reject(new Error(`ptrace stopper exited with ${code}`)));
    });
    const started = Date.now();
    const reader = spawn('cat', [path.join(daemon.mountpoint, 'proc/meminfo')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let readerErr = '';
    reader.stderr?.on('data', (d: Buffer) => { readerErr += d.toString(); });
    const readerDone = new Promise<number | null>((resolve) => reader.on('exit', (code) => resolve(code)));
    await new Promise((r) => setTimeout(r, 1000));
    expect(reader.exitCode).toBeNull(); // stuck while the loop is wedged...
    const readerCode = await readerDone; // ...until the watchdog aborts the connection
    const readerMs = Date.now() - started;
    expect(readerCode).not.toBe(0);
    expect(readerErr).toMatch(/Software caused connection abort|Transport endpoint is not connected/);
    expect(readerMs).toBeLessThan(10_000);
    // Nothing on the stopped main thread can act: the addon's deadman thread, no longer beaten,
    // aborts our connection and kills.
    const end = await exited;
    expect(end.signal).toBe('SIGKILL');
    expect(Date.now() - started).toBeLessThan(25_000);
    const said = daemon.logs.find((l) => l.includes('the main thread has not run for'));
    expect(said, daemon.logs.join('\n')).toBeDefined();
    const { level, msg } = JSON.parse(said ?? '{}') as { level: number; msg: string };
    expect(level).toBe(60);
    expect(msg).toMatch(new RegExp(`limit 3000 ms\\); our FUSE connections \\(fusectl\\): ${minors[0]} aborted, ${minors[1]} aborted; killing the process$`));
    console.log(`wedged main thread: reader freed after ${readerMs} ms, daemon ended (${JSON.stringify(end)}) after ${Date.now() - started} ms`);
  }, 60_000);
});
