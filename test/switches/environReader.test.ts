/**
 * EnvironReader's bound, with real worker threads running a stand-in for environWorker.js (the
 * unit lane has no dist/, nor a process whose environ blocks: test/integration/environHang.test.ts
 * has both). The stand-in answers the same protocol (Slot); pid 666's read takes STUCK_MS, as a
 * read held up in the kernel that returns once the process lets go, pid 777 is opted out, and
 * pid 500 ends the thread with an error.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Answer, STOP_REQUEST, Slot } from '../../src/switches/environRead';
import { EnvironReader, type EnvironReaderEvent } from '../../src/switches/environReader';

const STUCK_MS = 1500;
const TIMEOUT_MS = 100;

const STAND_IN = `
const { workerData } = require('node:worker_threads');
const S = ${JSON.stringify(Slot)}, A = ${JSON.stringify(Answer)};
const control = new Int32Array(workerData.control);
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
let seen = 0;
Atomics.store(control, S.READY, 1);
while (true) {
  Atomics.wait(control, S.REQUEST, seen);
  const seq = Atomics.load(control, S.REQUEST);
  if (seq === ${STOP_REQUEST}) break;
  if (seq === seen) continue;
  seen = seq;
  const pid = Atomics.load(control, S.PID);
  Atomics.store(control, S.WORKING_PID, pid);
  Atomics.store(control, S.WORKING_SEQ, seq);
  if (pid === 666) sleep(${STUCK_MS});
  if (pid === 500) throw new Error('the stand-in dies');
  Atomics.store(control, S.ANSWER, pid === 777 ? A.OPTED_OUT : pid === 404 ? A.FAILED : A.NO_DECLARATION);
  Atomics.store(control, S.DONE, seq);
  Atomics.notify(control, S.DONE);
}
`;

describe('EnvironReader', () => {
  let dir: string;
  let workerFile: string;
  const events: EnvironReaderEvent[] = [];

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-environ-reader-'));
    workerFile = path.join(dir, 'standIn.js');
    fs.writeFileSync(workerFile, STAND_IN);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Reads `pid` once the active thread has started (a fresh one answers "starting" at once). */
  async function readWhenStarted(reader: EnvironReader, pid: number): Promise<ReturnType<EnvironReader['read']>> {
    const deadline = Date.now() + 10_000;
    while (true) {
      const answer = reader.read(pid);
      if (!(answer.kind === 'unavailable' && answer.why === 'starting') || Date.now() > deadline) return answer;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('answers within the bound, sets a stuck thread aside, stops reading past maxStuck, and recovers when they return', async () => {
    const reader = new EnvironReader({ procRoot: '/nonexistent', timeoutMs: TIMEOUT_MS, maxStuck: 2, workerFile, onEvent: (e) => events.push(e) });
    try {
      expect(await readWhenStarted(reader, 777)).toEqual({ kind: 'read', optedOut: true });
      expect(reader.read(100)).toEqual({ kind: 'read', optedOut: false });
      expect(reader.read(404)).toEqual({ kind: 'failed' });

      let started = performance.now();
      expect(reader.read(666)).toEqual({ kind: 'timed-out' });
      const waitedMs = performance.now() - started;
      expect(waitedMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 1);
      expect(waitedMs).toBeLessThan(TIMEOUT_MS + 500);
      expect(reader.stuckCount).toBe(1);
      expect(reader.stuckOn(666)).toBe(true);
      expect(reader.stuckOn(777)).toBe(false);

      // A fresh thread took over: no wait while it starts, then reads as before.
      started = performance.now();
      const meanwhile = reader.read(777);
      expect([{ kind: 'unavailable', why: 'starting' }, { kind: 'read', optedOut: true }]).toContainEqual(meanwhile);
      expect(performance.now() - started).toBeLessThan(TIMEOUT_MS);
      expect(await readWhenStarted(reader, 777)).toEqual({ kind: 'read', optedOut: true });

      // A second stuck read reaches maxStuck: no thread left, answered at once.
      expect(reader.read(666)).toEqual({ kind: 'timed-out' });
      expect(reader.stuckCount).toBe(2);
      started = performance.now();
      expect(reader.read(777)).toEqual({ kind: 'unavailable', why: 'stuck-bound' });
      expect(performance.now() - started).toBeLessThan(TIMEOUT_MS);

      // The stuck reads return: their threads end, and reads resume on a fresh thread.
      await new Promise((resolve) => setTimeout(resolve, STUCK_MS + 200));
      expect(reader.stuckCount).toBe(0);
      expect(events.filter((e) => e.type === 'returned')).toHaveLength(2);
      expect(events.find((e) => e.type === 'returned')).toMatchObject({ pid: 666 });
      expect(await readWhenStarted(reader, 777)).toEqual({ kind: 'read', optedOut: true });
      expect(events.filter((e) => e.type === 'thread-error')).toEqual([]);
    } finally {
      reader.close();
    }
  }, 30_000);

  it('does not count a thread that died as stuck, and replaces it', async () => {
    const seen: EnvironReaderEvent[] = [];
    const reader = new EnvironReader({ procRoot: '/nonexistent', timeoutMs: TIMEOUT_MS, maxStuck: 1, workerFile, onEvent: (e) => seen.push(e) });
    try {
      expect(await readWhenStarted(reader, 777)).toEqual({ kind: 'read', optedOut: true });
      expect(reader.read(500)).toEqual({ kind: 'timed-out' }); // unanswered: from here, a stuck read and a dead thread look alike
      const deadline = Date.now() + 5000;
      while (!seen.some((e) => e.type === 'thread-error') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(seen.find((e) => e.type === 'thread-error')).toMatchObject({ err: expect.stringContaining('the stand-in dies') });
      expect(reader.stuckCount).toBe(0);
      expect(await readWhenStarted(reader, 777)).toEqual({ kind: 'read', optedOut: true });
    } finally {
      reader.close();
    }
  }, 30_000);
});
