/**
 * Environ reads off the main thread, each waited for at most `timeoutMs` (environRead.ts says why
 * one may never end). One reader thread serves the reads; the main thread hands it a pid through
 * shared memory and waits with Atomics.wait, so the request path stays synchronous and pays ~tens
 * of µs per read (once per container per ANSWER_TTL_MS).
 *
 * A thread whose read outlives the bound is stuck in the kernel, where nothing can interrupt it:
 * it is set aside and a fresh one takes over. At most `maxStuck` may be set aside; past that there
 * is no thread to read with, and reads are answered "unavailable" at once, until a stuck one
 * returns (when the process it reads lets go), which ends it.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { Answer, CONTROL_SLOTS, STOP_REQUEST, Slot } from './environRead';
import type { EnvironWorkerData } from './environWorker';

export type EnvironAnswer =
  | { kind: 'read'; optedOut: boolean }
  /** The environ could not be read (process gone, not readable): no declaration. */
  | { kind: 'failed' }
  /** The read did not end within the bound; its thread is stuck on it. */
  | { kind: 'timed-out' }
  /** No thread could make the read: all set aside (`stuck`), or one still starting. */
  | { kind: 'unavailable'; why: 'stuck-bound' | 'starting' | 'busy' };

/** What EnvOptOut needs of a reader (tests give it one that reads on the calling thread). */
export interface EnvironSource {
  read: (pid: number) => EnvironAnswer;
  /** Whether a set-aside thread is stuck reading `pid` (another read of it would stick too). */
  stuckOn: (pid: number) => boolean;
  /** Threads set aside, stuck in the kernel. */
  readonly stuckCount: number;
}

export interface EnvironReaderOptions {
  procRoot: string;
  timeoutMs: number;
  maxStuck: number;
  /** The thread's script (default: environWorker.js beside this file). */
  workerFile?: string;
  /** A thread failed or a stuck one returned: for the log. */
  onEvent?: (event: EnvironReaderEvent) => void;
}

export type EnvironReaderEvent =
  | { type: 'thread-error'; err: string }
  | { type: 'returned'; pid: number; stuckMs: number }
  /** The process exits with threads still stuck: it ends itself with SIGKILL (exitPastStuckThreads). */
  | { type: 'exit-stuck'; stuck: number };

interface ReaderThread {
  worker: Worker;
  control: Int32Array;
  seq: number;
  /** When it was set aside. */
  stuckAtMs: number;
  /** Its thread has ended (an error, or stopped): nothing to wait for. */
  exited: boolean;
}

/** A reader thread holds one small buffer and one environ at a time: a small heap is plenty. */
const THREAD_HEAP = { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2, stackSizeMb: 1 };
/** A thread that died unasked is replaced at most this often (a thread that cannot start is not spun). */
const RESPAWN_INTERVAL_MS = 1000;

export class EnvironReader implements EnvironSource {
  private active: ReaderThread | null = null;
  private readonly stuck: ReaderThread[] = [];
  private lastSpawnMs = Number.NEGATIVE_INFINITY;
  private closed = false;
  private exitHooked = false;

  constructor(private readonly options: EnvironReaderOptions) {
    this.active = this.spawn();
  }

  get stuckCount(): number {
    this.reap();
    return this.stuck.length;
  }

  stuckOn(pid: number): boolean {
    this.reap();
    return this.stuck.some((thread) => Atomics.load(thread.control, Slot.WORKING_PID) === pid);
  }

  read(pid: number): EnvironAnswer {
    this.reap();
    if (this.closed) return { kind: 'unavailable', why: 'starting' };
    if (this.active === null) {
      if (this.stuck.length >= this.options.maxStuck) return { kind: 'unavailable', why: 'stuck-bound' };
      if (performance.now() - this.lastSpawnMs < RESPAWN_INTERVAL_MS) return { kind: 'unavailable', why: 'starting' };
      this.active = this.spawn();
    }
    const thread = this.active;
    const { control } = thread;
    // Still starting (~50 ms or more, after a replacement): no wait, and no request it could stick on.
    if (Atomics.load(control, Slot.READY) === 0) return { kind: 'unavailable', why: 'starting' };
    const seq = ++thread.seq;
    Atomics.store(control, Slot.PID, pid);
    Atomics.store(control, Slot.REQUEST, seq);
    Atomics.notify(control, Slot.REQUEST);
    const deadline = performance.now() + this.options.timeoutMs;
    while (true) {
      const done = Atomics.load(control, Slot.DONE);
      if (done === seq) break;
      const leftMs = deadline - performance.now();
      if (leftMs <= 0) return this.timedOut(thread, seq);
      Atomics.wait(control, Slot.DONE, done, leftMs);
    }
    const answer = Atomics.load(control, Slot.ANSWER);
    if (answer === Answer.FAILED) return { kind: 'failed' };
    return { kind: 'read', optedOut: answer === Answer.OPTED_OUT };
  }

  /** Stops every thread that can still stop; stuck ones end when their read does (they hold nothing up). */
  close(): void {
    this.closed = true;
    for (const thread of [...this.stuck, ...(this.active ? [this.active] : [])]) stop(thread);
    this.active = null;
  }

  private timedOut(thread: ReaderThread, seq: number): EnvironAnswer {
    thread.stuckAtMs = performance.now();
    this.stuck.push(thread);
    if (this.stuck.length === 1 && !this.exitHooked) {
      this.exitHooked = true;
      process.on('exit', () => this.exitPastStuckThreads());
    }
    this.active = this.stuck.length < this.options.maxStuck ? this.spawn() : null;
    // Stuck on an earlier read that was given up on (timed out, then returned): this pid is not to blame.
    return Atomics.load(thread.control, Slot.WORKING_SEQ) === seq ? { kind: 'timed-out' } : { kind: 'unavailable', why: 'busy' };
  }

  /**
   * Node's exit joins every worker thread, and a stuck one never ends: the process would not exit.
   * Everything is stopped by the time 'exit' is emitted, so SIGKILL loses nothing but the code.
   */
  private exitPastStuckThreads(): void {
    this.reap();
    if (this.stuck.length === 0) return;
    this.options.onEvent?.({ type: 'exit-stuck', stuck: this.stuck.length });
    process.kill(process.pid, 'SIGKILL');
  }

  /** Ends the set-aside threads whose read has returned. */
  private reap(): void {
    for (let i = this.stuck.length - 1; i >= 0; i--) {
      const thread = this.stuck[i];
      const { control } = thread;
      const returned = Atomics.load(control, Slot.DONE) === Atomics.load(control, Slot.WORKING_SEQ);
      if (!(returned || thread.exited)) continue;
      this.stuck.splice(i, 1);
      stop(thread);
      if (returned) this.options.onEvent?.({ type: 'returned', pid: Atomics.load(control, Slot.WORKING_PID), stuckMs: Math.round(performance.now() - thread.stuckAtMs) });
    }
  }

  private spawn(): ReaderThread {
    this.lastSpawnMs = performance.now();
    const shared = new SharedArrayBuffer(CONTROL_SLOTS * Int32Array.BYTES_PER_ELEMENT);
    const workerData: EnvironWorkerData = { control: shared, procRoot: this.options.procRoot };
    const file = this.options.workerFile ?? path.join(__dirname, 'environWorker.js');
    const worker = new Worker(file, { workerData, resourceLimits: THREAD_HEAP });
    const thread: ReaderThread = { worker, control: new Int32Array(shared), seq: 0, stuckAtMs: 0, exited: false };
    const gone = (): void => {
      thread.exited = true;
      if (this.active === thread) this.active = null;
    };
    worker.on('error', (err) => {
      gone();
      if (!this.closed) this.options.onEvent?.({ type: 'thread-error', err: err.stack ?? String(err) });
    });
    worker.on('exit', gone);
    worker.unref(); // never what keeps the daemon alive
    return thread;
  }
}

function stop(thread: ReaderThread): void {
  Atomics.store(thread.control, Slot.REQUEST, STOP_REQUEST);
  Atomics.notify(thread.control, Slot.REQUEST);
}
