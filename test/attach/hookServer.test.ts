/**
 * The hook's socket on its own (a real unix socket, the attach replaced by a recording function):
 * who may reach it, what a request must look like, and the bounds (size, concurrency, a stale or
 * live predecessor's socket). The whole path, runc and the real hook included, is
 * test/integration/ocihook.test.ts.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseRequest, startHookServer, type AttachOutcome, type HookAttachRequest, type HookServer } from '../../src/attach/hookServer';

const logger = pino({ level: 'silent' });
const STATE = { ociVersion: '1.0.2', id: 'c1', status: 'creating', pid: 4242, bundle: '/run/bundle/c1', annotations: {} };

/** Sends one request (and half-closes), returns the answer line. */
function ask(socketPath: string, body: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let reply = '';
    socket.on('data', (d: Buffer) => { reply += d.toString(); });
    socket.on('end', () => resolve(reply));
    socket.on('error', reject);
    socket.end(body);
  });
}

describe('hook server', () => {
  let dir: string;
  let socketPath: string;
  let server: HookServer | null = null;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-hook-'));
    socketPath = path.join(dir, 'run', 'hook.sock');
  });

  afterEach(async () => {
    await server?.close();
    server = null;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers one JSON line per request, from the attach function, with a root-only socket', async () => {
    const seen: HookAttachRequest[] = [];
    server = await startHookServer({
      socketPath, logger,
      attach: (request) => { seen.push(request); return Promise.resolve({ result: 'attached', container: '/c1', files: ['/proc/meminfo'] }); },
    });
    expect(fs.statSync(path.dirname(socketPath)).mode & 0o777).toBe(0o700);
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o600);
    const reply = await ask(socketPath, JSON.stringify({ hookPid: 77, state: STATE }));
    expect(reply.endsWith('\n')).toBe(true);
    expect(reply.startsWith('{"result":"attached"')).toBe(true); // what the hook tests
    expect(seen).toEqual([{ pid: 4242, bundle: '/run/bundle/c1', hookPid: 77, id: 'c1' }]);
  });

  it('refuses malformed and oversized requests without calling attach', async () => {
    let calls = 0;
    server = await startHookServer({ socketPath, logger, attach: () => { calls++; return Promise.resolve({ result: 'skipped', reason: '' }); } });
    for (const body of ['', 'not json', '[]', JSON.stringify({ state: { ...STATE, pid: 0 } }), JSON.stringify({ state: { ...STATE, bundle: 'rel' } })]) {
      expect((JSON.parse(await ask(socketPath, body)) as AttachOutcome).result).toBe('failed');
    }
    const huge = Buffer.alloc(200 * 1024, 0x20);
    expect(await ask(socketPath, huge).catch(() => 'reset')).toMatch(/"result":"failed"|reset/);
    expect(calls).toBe(0);
  });

  it('runs at most 4 attaches at once; the others wait their turn and are all answered', async () => {
    let running = 0;
    let most = 0;
    server = await startHookServer({
      socketPath, logger,
      attach: async () => {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 20));
        running--;
        return { result: 'attached', container: '/c', files: [] };
      },
    });
    const replies = await Promise.all(Array.from({ length: 12 }, () => ask(socketPath, JSON.stringify({ state: STATE }))));
    expect(replies.every((r) => r.startsWith('{"result":"attached"'))).toBe(true);
    expect(most).toBe(4);
  });

  it('an attach that throws is answered "failed"', async () => {
    server = await startHookServer({ socketPath, logger, attach: () => Promise.reject(new Error('boom')) });
    expect(JSON.parse(await ask(socketPath, JSON.stringify({ state: STATE })))).toEqual({ result: 'failed', reason: 'Error: boom' });
  });

  it('replaces a killed predecessor\'s socket, refuses to take a live one or a non-socket', async () => {
    const attach = (): Promise<AttachOutcome> => Promise.resolve({ result: 'skipped', reason: '' });
    // A stale socket: its listener killed with SIGKILL (what a killed daemon leaves).
    fs.mkdirSync(path.dirname(socketPath), { recursive: true });
    const script = `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script]);
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    server = await startHookServer({ socketPath, logger, attach });
    expect((JSON.parse(await ask(socketPath, JSON.stringify({ state: STATE }))) as AttachOutcome).result).toBe('skipped');
    await expect(startHookServer({ socketPath, logger, attach })).rejects.toThrow(/another process listens/);
    const plain = path.join(dir, 'plain');
    fs.writeFileSync(plain, '');
    await expect(startHookServer({ socketPath: plain, logger, attach })).rejects.toThrow(/not a socket/);
  });

  it('parses only what it uses from the state', () => {
    expect(parseRequest(JSON.stringify({ state: STATE }))).toEqual({ pid: 4242, bundle: '/run/bundle/c1', hookPid: null, id: 'c1' });
    expect(parseRequest(JSON.stringify({ hookPid: -1, state: STATE }))).toMatch(/hookPid/);
    expect(parseRequest(JSON.stringify({ state: { ...STATE, pid: 1.5 } }))).toMatch(/state.pid/);
  });
});
