/**
 * The --http endpoint of the real daemon: /healthz reads through the real mount, /metrics counts
 * real requests and follows the switches.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';

async function get(port: number, url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${url}`);
  return { status: res.status, body: await res.text() };
}

function metricValue(text: string, line: RegExp): number {
  const m = line.exec(text);
  if (!m) throw new Error(`metric ${line} missing from:\n${text.slice(0, 2000)}`);
  return Number(m[1]);
}

describe('--http health and metrics', () => {
  let daemon: DaemonHandle;
  let port: number;

  beforeAll(async () => {
    daemon = await startDaemon({ args: ['--http', '127.0.0.1:0'] });
    const deadline = Date.now() + 5000;
    let listening: string | undefined;
    while (!(listening = daemon.logs.find((l) => l.includes('health and metrics endpoint listening')))) {
      if (Date.now() > deadline) throw new Error(`no listening line:\n${daemon.logs.join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    port = (JSON.parse(listening) as { port: number }).port;
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
