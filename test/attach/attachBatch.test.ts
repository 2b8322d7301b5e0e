/**
 * isolfs-attach --batch through AttachBatcher, in real mount namespaces (unshare -m, a sleeping
 * process each), no daemon: host tmp files stand in for the served files. One namespace hangs (a
 * FUSE mount nobody answers: its child is killed at the timeout) and one is gone mid-run: each
 * costs only its own pairs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttachHelperError, defaultAttachHelperPath } from '../../src/attach/attach';
import { AttachBatcher } from '../../src/attach/attachBatch';

const HELPER = defaultAttachHelperPath();
const NS_TIMEOUT_MS = 400;

/** A process alone in a new mount namespace; `setup` runs in it first (fd 3: `fd`, if given). */
async function namespaceProcess(setup: string, fd?: number): Promise<ChildProcess> {
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${setup}\necho up\nexec sleep 300`], {
    stdio: ['ignore', 'pipe', 'inherit', ...(fd === undefined ? [] : [fd])],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', (d: Buffer) => (String(d).startsWith('up') ? resolve() : reject(new Error(String(d)))));
    child.once('exit', (code) => reject(new Error(`namespace process exited with ${code}`)));
  });
  return child;
}

/** The value or the error. */
function settled(p: Promise<unknown>): Promise<unknown> {
  return p.then((value) => value, (err: unknown) => err);
}

describe.skipIf(process.getuid?.() !== 0)('isolfs-attach --batch', () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-batch-test-'));
  const source = path.join(scratch, 'source');
  const target = path.join(scratch, 'target');
  const hung = path.join(scratch, 'hung');
  const children: ChildProcess[] = [];
  let fuseFd = -1;

  beforeAll(() => {
    fs.writeFileSync(source, 'served\n');
    fs.writeFileSync(target, 'original\n');
    fs.mkdirSync(hung);
    // Never read: the kernel's INIT stays unanswered, so every request to the mount waits.
    fuseFd = fs.openSync('/dev/fuse', 'r+');
  });

  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    if (fuseFd >= 0) fs.closeSync(fuseFd);
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  const readIn = (c: ChildProcess): string => fs.readFileSync(`/proc/${c.pid}/root${target}`, 'utf8');

  it('a hung namespace and one gone mid-run cost only their own pairs; the others are attached in the same run', async () => {
    const [a, hanging, gone, d] = [
      await namespaceProcess(':'),
      // A FUSE mount in this namespace only, nobody answering: the child's stat of the target waits.
      await namespaceProcess(`mount -i -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 isolfs-test-hung '${hung}'`, fuseFd),
      await namespaceProcess(':'),
      await namespaceProcess(':'),
    ];
    children.push(a, hanging, gone, d);
    const batcher = new AttachBatcher({ helperPath: HELPER, windowMs: 5, nsTimeoutMs: NS_TIMEOUT_MS });
    const pair = { source, target, detachMountIds: [] };
    const startedMs = performance.now();
    const results = [a, hanging, gone, d].map((c, i) =>
      settled(batcher.attach(c.pid as number, i === 1 ? [{ source, target: hung, detachMountIds: [] }, pair] : [pair])));
    // While the hung namespace's child waits, the process of the next one exits.
    await new Promise((r) => setTimeout(r, NS_TIMEOUT_MS / 2));
    process.kill(gone.pid as number, 'SIGKILL');
    const [ra, rHung, rGone, rd] = await Promise.all(results);
    const elapsedMs = performance.now() - startedMs;

    expect(batcher.runs, 'one helper run for the four namespaces').toBe(1);
    expect(ra).toEqual([{ target, ok: true, detachedMounts: 0 }]);
    expect(rd).toEqual([{ target, ok: true, detachedMounts: 0 }]);
    expect(readIn(a)).toBe('served\n');
    expect(readIn(d)).toBe('served\n');
    expect(fs.readFileSync(target, 'utf8'), 'the host never sees the bind').toBe('original\n');
    expect(rHung).toBeInstanceOf(AttachHelperError);
    expect((rHung as AttachHelperError).errno).toBe('ETIMEDOUT');
    expect(readIn(hanging), 'nothing was bound in the hung namespace').toBe('original\n');
    expect(rGone).toBeInstanceOf(AttachHelperError);
    expect((rGone as AttachHelperError).errno).toBe('ESRCH');
    expect(elapsedMs, 'the hung namespace is bounded by its timeout').toBeLessThan(NS_TIMEOUT_MS + 1500);
  });

  it('namespaces beyond one run go in further runs, each request answered with its own results', async () => {
    const procs = await Promise.all(Array.from({ length: 5 }, () => namespaceProcess(':')));
    children.push(...procs);
    const batcher = new AttachBatcher({ helperPath: HELPER, maxRuns: 1, maxNamespaces: 2 });
    const results = await Promise.all(procs.map((c) => batcher.attach(c.pid as number, [{ source, target, detachMountIds: [] }])));
    expect(results).toEqual(procs.map(() => [{ target, ok: true, detachedMounts: 0 }]));
    expect(batcher.runs).toBe(3);
    for (const c of procs) expect(readIn(c)).toBe('served\n');
  });

  it('rejects a source the batch line could mistake for a namespace, before running anything', () => {
    const batcher = new AttachBatcher({ helperPath: HELPER });
    expect(() => batcher.attach(1, [{ source: '@2', target, detachMountIds: [] }])).toThrow(AttachHelperError);
    expect(batcher.runs).toBe(0);
  });
});
