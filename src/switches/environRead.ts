/**
 * Reading a container's opt-out declaration from /proc/<pid>/environ, and the thread side of
 * the reads environReader.ts hands to a worker thread. Shared by both threads: no state here.
 *
 * The read is of the target process's memory (access_remote_vm), under its mmap lock: a process
 * can keep that lock from being taken for as long as it likes (a thread of its own faulting in a
 * page of a FUSE file it never answers, while another waits to write-lock), so the read may never
 * end, and it is never made on the thread that serves every pod.
 */
import path from 'node:path';
import { readBoundedPrefix } from '../host/boundedRead';

export const OPT_OUT_ENV = 'CONTAINER_STATS_ISOLATED';
/** An environment can be as long as ARG_MAX allows; a declaration past this is not seen. */
export const ENVIRON_MAX_BYTES = 256 * 1024;

/** Whether an environment (NUL-separated, maybe cut at the cap) declares CONTAINER_STATS_ISOLATED=0. */
export function declaresOptOut(text: string, truncated: boolean): boolean {
  const entries = text.split('\0');
  if (truncated) entries.pop(); // cut in the middle: not a whole declaration
  for (const entry of entries) {
    if (entry.startsWith(`${OPT_OUT_ENV}=`)) return entry.slice(OPT_OUT_ENV.length + 1).trim() === '0';
  }
  return false;
}

/** The declaration of process `pid`; throws a FileReadError when its environ cannot be read. */
export function readDeclaration(procRoot: string, pid: number): boolean {
  const environ = readBoundedPrefix(path.join(procRoot, String(pid)), 'environ', ENVIRON_MAX_BYTES);
  return declaresOptOut(environ.text, environ.truncated);
}

/**
 * The shared control words (Int32Array over a SharedArrayBuffer) of one reader thread. The main
 * thread writes PID then REQUEST (a sequence number; -1 = stop) and waits on DONE; the thread
 * writes WORKING_SEQ/WORKING_PID before it reads, ANSWER then DONE after.
 */
export const Slot = { REQUEST: 0, PID: 1, WORKING_SEQ: 2, WORKING_PID: 3, ANSWER: 4, DONE: 5, READY: 6 } as const;
export const CONTROL_SLOTS = 7;
export const Answer = { NO_DECLARATION: 0, OPTED_OUT: 1, FAILED: 2 } as const;
export const STOP_REQUEST = -1;

/** The reader thread's loop: one read per request, until STOP_REQUEST. */
export function serveEnvironReads(control: Int32Array, procRoot: string): void {
  let seen = 0;
  Atomics.store(control, Slot.READY, 1);
  while (true) {
    Atomics.wait(control, Slot.REQUEST, seen);
    const seq = Atomics.load(control, Slot.REQUEST);
    if (seq === STOP_REQUEST) return;
    if (seq === seen) continue;
    seen = seq;
    const pid = Atomics.load(control, Slot.PID);
    Atomics.store(control, Slot.WORKING_PID, pid);
    Atomics.store(control, Slot.WORKING_SEQ, seq);
    let answer: number;
    try {
      answer = readDeclaration(procRoot, pid) ? Answer.OPTED_OUT : Answer.NO_DECLARATION;
    } catch {
      answer = Answer.FAILED; // gone, or not ours to read
    }
    Atomics.store(control, Slot.ANSWER, answer);
    Atomics.store(control, Slot.DONE, seq);
    Atomics.notify(control, Slot.DONE);
  }
}
