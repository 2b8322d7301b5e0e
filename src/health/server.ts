/**
 * The health and metrics HTTP endpoint the DaemonSet's probes and Prometheus use:
 *   /healthz  liveness: the mount answers (checkMount: the daemon's watchdog verdict), 200 "ok"
 *             or 503 with the reason
 *   /readyz   readiness: mounted, answering and not stopping (isReady)
 *   /metrics  Prometheus text exposition of the Metrics registry
 * It runs on the daemon's event loop, so every handler is asynchronous and short.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics';

/** The port the image's default command, the DaemonSet's probes and its scrape annotations use. */
export const DEFAULT_HTTP_PORT = 9464;
/**
 * Connections held at once, in all and per remote address: it listens on the pod network, and
 * each connection is one of the daemon's fds (which its mount needs): a pod opening thousands
 * must not take them, nor crowd out the kubelet's probes, which come from another address.
 */
const MAX_CONNECTIONS = 512;
const MAX_CONNECTIONS_PER_ADDRESS = 32;

export interface MountCheck {
  ok: boolean;
  detail: string;
}

export interface HealthLogger {
  info: (o: object, msg?: string) => void;
  warn: (o: object, msg?: string) => void;
}

export interface HealthServerOptions {
  /** host:port to listen on; `[::1]:9464` for IPv6; port 0 picks a free one. */
  listen: string;
  /** Whether the mount answers (must settle; is also capped by checkTimeoutMs). */
  checkMount: () => Promise<MountCheck>;
  isReady: () => boolean;
  metrics: Metrics;
  logger: HealthLogger;
  /** /healthz answers 503 when checkMount has not settled by then. Default 5000. */
  checkTimeoutMs?: number;
}

export interface HealthServer {
  /** Where it listens, with the real port when `listen` asked for port 0. */
  readonly host: string;
  readonly port: number;
  close: () => Promise<void>;
}

export class ListenAddressError extends Error {
  constructor(listen: string) {
    super(`--http expects HOST:PORT (e.g. 0.0.0.0:${DEFAULT_HTTP_PORT} or [::1]:${DEFAULT_HTTP_PORT}), got "${listen}"`);
    this.name = 'ListenAddressError';
  }
}

/** Splits `host:port` / `[v6]:port` into its parts; throws ListenAddressError on anything else. */
export function parseListenAddress(listen: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  if (match === null) throw new ListenAddressError(listen);
  const port = Number(match[3]);
  if (port > 65535) throw new ListenAddressError(listen);
  return { host: match[1] ?? match[2] ?? '', port };
}

export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const { host, port } = parseListenAddress(opts.listen);
  const handle = requestHandler(opts);
  // Stalled connections are looked for every second (default 30 s): held ones are freed soon after headersTimeout.
  const server = http.createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      opts.logger.warn({ err: err instanceof Error ? err.message : String(err), url: req.url }, 'health endpoint failed');
      if (res.headersSent) res.destroy();
      else reply(res, 500, 'internal error\n');
    });
  });
  // A probe or scraper that stalls must not hold a socket for long.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.maxConnections = MAX_CONNECTIONS;
  limitPerAddress(server, MAX_CONNECTIONS_PER_ADDRESS);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  opts.logger.info({ host: address.address, port: address.port }, 'health and metrics endpoint listening');

  return {
    host: address.address,
    port: address.port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Keep-alive connections from scrapers would otherwise hold close() open.
        server.closeAllConnections();
      }),
  };
}

/** Closes a new connection at once when its remote address holds `limit` already. */
function limitPerAddress(server: http.Server, limit: number): void {
  const held = new Map<string, number>();
  server.on('connection', (socket) => {
    const address = socket.remoteAddress ?? '';
    const count = held.get(address) ?? 0;
    if (count >= limit) {
      socket.destroy();
      return;
    }
    held.set(address, count + 1);
    socket.once('close', () => {
      const left = (held.get(address) ?? 1) - 1;
      if (left > 0) held.set(address, left);
      else held.delete(address);
    });
  });
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;

function requestHandler(opts: HealthServerOptions): Handler {
  const healthz = healthzHandler(opts);
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    const pathname = (req.url ?? '/').split('?')[0];
    switch (pathname) {
      case '/healthz':
        await healthz(res);
        return;
      case '/readyz':
        if (opts.isReady()) reply(res, 200, 'ok\n');
        else reply(res, 503, 'not ready\n');
        return;
      case '/metrics':
        reply(res, 200, await opts.metrics.metricsText(), { 'content-type': opts.metrics.contentType });
        return;
      default:
        reply(res, 404, 'not found\n');
    }
  };
}

/** /healthz: the mount check, bounded by checkTimeoutMs; logs only when health changes. */
function healthzHandler(opts: HealthServerOptions): (res: http.ServerResponse) => Promise<void> {
  const checkTimeoutMs = opts.checkTimeoutMs ?? 5000;
  let lastHealthy: boolean | null = null;
  return async (res) => {
    const check = await runCheck(opts.checkMount, checkTimeoutMs);
    if (check.ok !== lastHealthy) {
      if (check.ok) opts.logger.info({ detail: check.detail }, 'health check passes');
      else opts.logger.warn({ detail: check.detail }, 'health check fails');
      lastHealthy = check.ok;
    }
    reply(res, check.ok ? 200 : 503, check.ok ? 'ok\n' : `${check.detail}\n`);
  };
}

async function runCheck(checkMount: () => Promise<MountCheck>, checkTimeoutMs: number): Promise<MountCheck> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<MountCheck>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `mount check did not answer within ${checkTimeoutMs} ms` }), checkTimeoutMs);
  });
  try {
    return await Promise.race([checkMount(), timeout]);
  } catch (err) {
    return { ok: false, detail: `mount check failed: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    clearTimeout(timer);
  }
}

function reply(res: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
