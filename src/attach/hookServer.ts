/**
 * The daemon's end of the OCI hook (native/src/hook.c): a unix socket on which a runtime's
 * createRuntime hook asks for a container to be attached now, before its first instruction.
 *
 * Why a unix socket in a root-only directory rather than the --http endpoint: the hook runs as
 * root in the runtime's namespaces on the host; a socket file in a 0700 directory is reachable by
 * root on the host and by nothing in a container (which sees neither the directory nor the
 * host's network), needs no port, and cannot be reached from another node. The HTTP endpoint
 * listens on the pod network for probes.
 *
 * One request per connection: the hook writes {"hookPid":N,"state":{...OCI state...}}, shuts
 * down its writing side, and gets one JSON line back, {"result":...} first. Bounded: at most
 * MAX_REQUEST_BYTES per request, MAX_CONNECTIONS open at once (more are closed by the kernel
 * side of net.Server), MAX_ATTACHING attaches running at once (the others wait their turn), and
 * REQUEST_TIMEOUT_MS per connection, after which it is closed unanswered (the hook has given up
 * long before: its own default is 2 s). Nothing here blocks the event loop: the attach runs its
 * helper asynchronously.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from '../log';

/** What the hook asks for: the container's init (host pid), its bundle, and the hook's own pid. */
export interface HookAttachRequest {
  /** The container's init as the host sees it (the state's pid at createRuntime). */
  pid: number;
  /** The bundle directory as the runtime (and the hook) see it. */
  bundle: string;
  /** The hook process itself, in the runtime's namespaces: the bundle is read through its root. */
  hookPid: number | null;
  /** The container's id (for the log). */
  id: string;
}

/** What became of one request; `result` is what the hook tests. */
export type AttachOutcome =
  /** The files are in place (`files`: the container's paths, /proc/meminfo, ...). */
  | { result: 'attached'; container: string; files: string[] }
  /** Nothing to do: not under an --attach prefix, the host switch is off, ... */
  | { result: 'skipped'; reason: string }
  /** Could not attach now (the periodic scan tries again). */
  | { result: 'failed'; reason: string };

export interface HookServerOptions {
  socketPath: string;
  attach: (request: HookAttachRequest) => Promise<AttachOutcome>;
  logger: Logger;
}

export const DEFAULT_HOOK_SOCKET = '/run/isolfs-hook/hook.sock';
const MAX_REQUEST_BYTES = 64 * 1024;
const MAX_CONNECTIONS = 64;
const MAX_ATTACHING = 4;
const REQUEST_TIMEOUT_MS = 15_000;

export interface HookServer {
  close: () => Promise<void>;
}

/**
 * Listens on socketPath: its directory is created (or chmodded) 0700, a stale socket left by a
 * killed predecessor is replaced (only a socket: any other file there is an error), and the
 * socket is made 0600.
 */
export async function startHookServer(options: HookServerOptions): Promise<HookServer> {
  const { socketPath, logger } = options;
  const dir = path.dirname(socketPath);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  await removeStaleSocket(socketPath);
  const limiter = new Limiter(MAX_ATTACHING);
  const server = net.createServer({ allowHalfOpen: true }, (socket) => serveConnection(socket, options, limiter));
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  fs.chmodSync(socketPath, 0o600);
  server.on('error', (err) => logger.error({ err: String(err) }, 'hook socket error'));
  logger.info({ socket: socketPath }, 'serving the OCI hook');
  return {
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      try { fs.unlinkSync(socketPath); } catch { /* gone already */ }
    }),
  };
}

/** A socket nobody listens on (a killed predecessor's) is removed; a live one is another daemon's. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.setTimeout(1000, () => { probe.destroy(); resolve(true); });
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another process listens on ${socketPath} (another isolfs with --attach?)`);
  fs.unlinkSync(socketPath);
}

function serveConnection(socket: net.Socket, options: HookServerOptions, limiter: Limiter): void {
  const started = performance.now();
  const chunks: Buffer[] = [];
  let size = 0;
  // From the connection on, not per inactivity: a client trickling bytes is cut off all the same.
  const deadline = setTimeout(() => socket.destroy(), REQUEST_TIMEOUT_MS);
  deadline.unref();
  socket.on('close', () => clearTimeout(deadline));
  socket.on('error', () => socket.destroy());
  const answer = (outcome: AttachOutcome): void => {
    if (!socket.destroyed) socket.end(`${JSON.stringify(outcome)}\n`);
  };
  socket.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) {
      socket.removeAllListeners('data');
      answer({ result: 'failed', reason: `request larger than ${MAX_REQUEST_BYTES} bytes` });
      return;
    }
    chunks.push(chunk);
  });
  socket.on('end', () => {
    if (size > MAX_REQUEST_BYTES) return;
    const request = parseRequest(Buffer.concat(chunks).toString('utf8'));
    if (typeof request === 'string') {
      options.logger.warn({ reason: request }, 'malformed OCI hook request');
      answer({ result: 'failed', reason: request });
      return;
    }
    void limiter.run(() => attachSafely(options, request)).then((outcome) => {
      const ms = Math.round((performance.now() - started) * 10) / 10;
      const level = outcome.result === 'failed' ? 'warn' : 'info';
      options.logger[level]({ ...outcome, id: request.id, pid: request.pid, ms }, 'OCI hook request');
      answer(outcome);
    });
  });
}

async function attachSafely(options: HookServerOptions, request: HookAttachRequest): Promise<AttachOutcome> {
  try {
    return await options.attach(request);
  } catch (err) {
    return { result: 'failed', reason: String(err) };
  }
}

/** The request, or why it is not one. Only what is used is checked; the rest of the state is ignored. */
export function parseRequest(text: string): HookAttachRequest | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof body !== 'object' || body === null) return 'not a JSON object';
  const { hookPid, state } = body as { hookPid?: unknown; state?: unknown };
  if (typeof state !== 'object' || state === null) return 'no state';
  const { pid, bundle, id } = state as { pid?: unknown; bundle?: unknown; id?: unknown };
  if (!isPid(pid)) return 'state.pid must be a positive integer (a createRuntime hook gets the container\'s init)';
  if (typeof bundle !== 'string' || !path.isAbsolute(bundle) || bundle.length > 4096 || bundle.includes('\0')) {
    return 'state.bundle must be an absolute path';
  }
  if (hookPid !== undefined && !isPid(hookPid)) return 'hookPid must be a positive integer';
  return { pid, bundle, hookPid: hookPid ?? null, id: typeof id === 'string' ? id.slice(0, 256) : '' };
}

function isPid(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= 0x7fffffff;
}

/** Runs at most `limit` tasks at once; the others wait in order (their connections are bounded). */
class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}
