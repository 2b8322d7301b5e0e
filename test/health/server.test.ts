import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/health/metrics';
import { ListenAddressError, parseListenAddress, startHealthServer, type HealthServer, type MountCheck } from '../../src/health/server';

interface Response {
  status: number;
  contentType: string | undefined;
  body: string;
}

function get(port: number, path: string, method = 'GET'): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface LogLine {
  level: 'info' | 'warn';
  o: object;
  msg?: string;
}

function recordingLogger(lines: LogLine[]): { info: (o: object, msg?: string) => void; warn: (o: object, msg?: string) => void } {
  return {
    info: (o, msg) => lines.push({ level: 'info', o, msg }),
    warn: (o, msg) => lines.push({ level: 'warn', o, msg }),
  };
}

/** Parses Prometheus text exposition into `name{labels}` -> value (labels as written). */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

let server: HealthServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function start(overrides: { checkMount?: () => Promise<MountCheck>; isReady?: () => boolean; metrics?: Metrics; checkTimeoutMs?: number; logs?: LogLine[] } = {}): Promise<HealthServer> {
  server = await startHealthServer({
    listen: '127.0.0.1:0',
    checkMount: overrides.checkMount ?? (async () => ({ ok: true, detail: 'read 1400 bytes' })),
    isReady: overrides.isReady ?? (() => true),
    metrics: overrides.metrics ?? new Metrics({ defaultMetrics: false }),
    logger: recordingLogger(overrides.logs ?? []),
    checkTimeoutMs: overrides.checkTimeoutMs,
  });
  return server;
}

describe('startHealthServer', () => {
  it('listens on an ephemeral port on 127.0.0.1 and reports the real port', async () => {
    const s = await start();
    expect(s.host).toBe('127.0.0.1');
    expect(s.port).toBeGreaterThan(0);
  });

  it('answers /healthz 200 "ok" when the mount check passes', async () => {
    const s = await start();
    const res = await get(s.port, '/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toBe('ok\n');
  });

  it('answers /healthz 503 with the detail when the mount check fails, and logs the change once', async () => {
    const logs: LogLine[] = [];
    const s = await start({ checkMount: async () => ({ ok: false, detail: 'read /mnt/proc/meminfo: ENOTCONN' }), logs });
    const first = await get(s.port, '/healthz');
    const second = await get(s.port, '/healthz');
    expect(first.status).toBe(503);
    expect(first.body).toBe('read /mnt/proc/meminfo: ENOTCONN\n');
    expect(second.status).toBe(503);
    const warnings = logs.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0].o).toEqual({ detail: 'read /mnt/proc/meminfo: ENOTCONN' });
  });

  it('answers /healthz 503 when the mount check throws', async () => {
    const s = await start({
      checkMount: () => Promise.reject(new Error('EIO')),
    });
    const res = await get(s.port, '/healthz');
    expect(res.status).toBe(503);
    expect(res.body).toContain('EIO');
  });

  it('answers /healthz 503 when the mount check hangs past the timeout', async () => {
    const s = await start({ checkMount: () => new Promise<MountCheck>(() => undefined), checkTimeoutMs: 100 });
    const started = Date.now();
    const res = await get(s.port, '/healthz');
    expect(res.status).toBe(503);
    expect(res.body).toContain('within 100 ms');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('answers /readyz from isReady, changing as the daemon becomes ready', async () => {
    let ready = false;
    const s = await start({ isReady: () => ready });
    expect((await get(s.port, '/readyz')).status).toBe(503);
    ready = true;
    const res = await get(s.port, '/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toBe('ok\n');
  });

  it('answers unknown paths 404 and other methods 405, and HEAD without a body', async () => {
    const s = await start();
    expect((await get(s.port, '/nope')).status).toBe(404);
    expect((await get(s.port, '/healthz', 'POST')).status).toBe(405);
    const head = await get(s.port, '/healthz', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });

  it('serves /metrics as Prometheus text with the values the daemon observed', async () => {
    const metrics = new Metrics({ containersTracked: () => 2 });
    metrics.observeRequest('/proc/meminfo', 'isolated', 0.0002);
    metrics.observeRequest('/proc/meminfo', 'isolated', 0.0004);
    metrics.observeRequest('/proc/meminfo', 'host', 0.00003);
    metrics.observeRequest('/proc/stat', 'error', 0.05);
    metrics.containerTracked();
    metrics.containerTracked();
    metrics.setSwitches(true, 3);
    metrics.observeSamplerTick(0.004, 0);
    const s = await start({ metrics });

    const res = await get(s.port, '/metrics');
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parseExposition(res.body);

    expect(samples.get('isolfs_requests_total{file="/proc/meminfo",result="isolated"}')).toBe(2);
    expect(samples.get('isolfs_requests_total{file="/proc/meminfo",result="host"}')).toBe(1);
    expect(samples.get('isolfs_requests_total{file="/proc/stat",result="error"}')).toBe(1);
    expect(samples.get('isolfs_request_duration_seconds_count{file="/proc/meminfo"}')).toBe(3);
    expect(samples.get('isolfs_request_duration_seconds_sum{file="/proc/meminfo"}')).toBeCloseTo(0.00063, 9);
    // 30 µs lands in the 50 µs bucket, 200 µs and 400 µs in the 500 µs one.
    expect(samples.get('isolfs_request_duration_seconds_bucket{le="0.00001",file="/proc/meminfo"}')).toBe(0);
    expect(samples.get('isolfs_request_duration_seconds_bucket{le="0.00005",file="/proc/meminfo"}')).toBe(1);
    expect(samples.get('isolfs_request_duration_seconds_bucket{le="0.0005",file="/proc/meminfo"}')).toBe(3);
    expect(samples.get('isolfs_request_duration_seconds_bucket{le="0.1",file="/proc/stat"}')).toBe(1);
    expect(samples.get('isolfs_containers_seen')).toBe(2);
    expect(samples.get('isolfs_containers_new_total')).toBe(2);
    expect(samples.get('isolfs_switch_host_isolated')).toBe(1);
    expect(samples.get('isolfs_containers_opted_out')).toBe(3);
    expect(samples.get('isolfs_loadavg_sampler_duration_seconds_count')).toBe(1);
    expect(samples.get('isolfs_loadavg_sampler_duration_seconds_bucket{le="0.005"}')).toBe(1);
    expect(samples.get('isolfs_loadavg_sampler_duration_seconds_bucket{le="0.0025"}')).toBe(0);

    // The daemon's own resources, measured by pidusage on scrape: this test process has some.
    const memoryBytes = samples.get('isolfs_process_memory_bytes');
    expect(memoryBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(memoryBytes).toBeLessThan(64 * 1024 * 1024 * 1024);
    const cpuPercent = samples.get('isolfs_process_cpu_percent');
    expect(cpuPercent).toBeGreaterThanOrEqual(0);
    // prom-client's default metrics are registered too.
    expect(samples.has('process_resident_memory_bytes')).toBe(true);
    expect(samples.has('nodejs_eventloop_lag_seconds')).toBe(true);

    metrics.setSwitches(false, 0);
    const after = parseExposition((await get(s.port, '/metrics')).body);
    expect(after.get('isolfs_switch_host_isolated')).toBe(0);
    expect(after.get('isolfs_containers_opted_out')).toBe(0);
  });

  it('refuses to start on an address already in use', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await expect(
        startHealthServer({
          listen: `127.0.0.1:${port}`,
          checkMount: async () => ({ ok: true, detail: '' }),
          isReady: () => true,
          metrics: new Metrics({ defaultMetrics: false }),
          logger: recordingLogger([]),
        }),
      ).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});

describe('parseListenAddress', () => {
  it('splits host:port and [v6]:port', () => {
    expect(parseListenAddress('0.0.0.0:9464')).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(parseListenAddress('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    expect(parseListenAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
  });

  it('rejects a missing port, a bare v6 address and an out-of-range port', () => {
    expect(() => parseListenAddress('0.0.0.0')).toThrow(ListenAddressError);
    expect(() => parseListenAddress('::1:9464')).toThrow(ListenAddressError);
    expect(() => parseListenAddress('0.0.0.0:70000')).toThrow(ListenAddressError);
  });
});
