/**
 * The --http endpoint listens on the pod network (probes, scrapers), so any pod may connect.
 * Each connection is a file descriptor of the daemon, which its FUSE answers, kept cgroup files
 * and PSI triggers need too: a pod opening thousands of idle connections (here 4000, from
 * 127.0.0.2 as another pod would) took as many fds (up to the daemon's RLIMIT_NOFILE: then
 * every pod's reads fail). Now at most 32 connections per remote address and 512 in all are
 * held (more are closed at once), the kubelet's probe from another address still answers, and
 * the held ones, idle, are closed ~10 s later (headersTimeout, looked at every second).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { until } from '../helpers/procText';

const CONNECTIONS = 4000;

/** Opens COUNT connections from 127.0.0.2 to the port, prints how many opened, holds them. */
const FLOODER = `
import socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(count):
    s = socket.socket()
    s.bind(('127.0.0.2', 0))
    try:
        s.connect(('127.0.0.1', port))
    except OSError:
        s.close(); continue
    held.append(s)
print(len(held), flush=True)
time.sleep(600)
`;

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

describe('--http endpoint: connections from one pod are bounded', () => {
  let daemon: DaemonHandle;
  let flooder: ChildProcess | null = null;

  beforeAll(async () => {
    daemon = await startDaemon({ args: ['--http', '127.0.0.1:0'] });
  }, 30_000);

  afterAll(async () => {
    if (flooder && flooder.exitCode === null) {
      const exited = new Promise((r) => flooder?.once('exit', r));
      flooder.kill('SIGKILL');
      await exited;
    }
    await daemon?.cleanup();
  }, 30_000);

  it('4000 idle connections from one address cost the daemon at most ~32 fds; the probe still answers', async () => {
    const line = await until('listening line', () => daemon.logs.find((l) => l.includes('health and metrics endpoint listening')), Boolean, 5000);
    const port = (JSON.parse(line as string) as { port: number }).port;
    const pid = daemon.process.pid as number;
    const before = fdCount(pid);
    flooder = spawn('python3', ['-c', FLOODER, String(port), String(CONNECTIONS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = readline.createInterface({ input: flooder.stdout as NodeJS.ReadableStream });
    await new Promise<void>((resolve) => lines.once('line', () => resolve()));
    // The daemon accepts (and closes) the backlog at its pace: let it catch up.
    await new Promise((r) => setTimeout(r, 1000));
    const grown = fdCount(pid) - before;
    expect(grown, `daemon fds grew by ${grown}`).toBeLessThan(100);
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(res.status).toBe(200);
    // The ones it holds send no request: closed once headersTimeout (10 s) passed, checked every second.
    await until('the idle connections closed by the daemon', () => fdCount(pid) - before, (n) => n < 5, 20_000);
  }, 60_000);
});
