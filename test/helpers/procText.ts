/**
 * Parsers for what readers in the integration tests print (/proc files, tool output), and the
 * processes of a test cgroup: small, strict, and loud when the text is not what they expect.
 */
import fs from 'node:fs';
import type { TestCgroup } from './cgroups';
import type { RunResult } from './container';

/** The stdout of a command that must have succeeded; its stderr and stdout otherwise. */
export function ok(result: RunResult): string {
  if (result.code !== 0) throw new Error(`exit ${result.code}: ${result.stderr}\n${result.stdout}`);
  return result.stdout;
}

/** Every "cpu"/"cpuN" line of a /proc/stat text, as name -> all its numeric columns. */
export function statCpuLines(text: string): Map<string, bigint[]> {
  const lines = new Map<string, bigint[]>();
  for (const line of text.split('\n')) {
    if (!/^cpu\d*\s/.test(line)) continue;
    const [name, ...fields] = line.trim().split(/\s+/);
    if (fields.length < 4 || fields.some((f) => !/^\d+$/.test(f))) throw new Error(`bad /proc/stat line: ${line}`);
    lines.set(name, fields.map((f) => BigInt(f)));
  }
  if (!lines.has('cpu')) throw new Error(`no aggregate cpu line in:\n${text}`);
  return lines;
}

/**
 * The first place where a later /proc/stat read is below an earlier one (any column of any cpu
 * line; a line that disappears counts too), or null when every read is >= the one before.
 */
export function firstBackwardStep(reads: readonly Map<string, bigint[]>[]): string | null {
  for (let i = 1; i < reads.length; i++) {
    for (const [name, before] of reads[i - 1]) {
      const after = reads[i].get(name);
      if (!after) return `read ${i}: ${name} disappeared`;
      if (after.length !== before.length) return `read ${i}: ${name} has ${after.length} columns, had ${before.length}`;
      for (let f = 0; f < before.length; f++) {
        if (after[f] < before[f]) return `read ${i}: ${name} column ${f + 1} went from ${before[f]} to ${after[f]}`;
      }
    }
  }
  return null;
}

export interface Loadavg {
  /** The three averages as printed ("0.52"), and as numbers. */
  printed: [string, string, string];
  load1: number;
  load5: number;
  load15: number;
  running: number;
  total: number;
}

/** One /proc/loadavg text, in the kernel's exact format. */
export function parseLoadavg(text: string): Loadavg {
  const m = /^(\d+\.\d\d) (\d+\.\d\d) (\d+\.\d\d) (\d+)\/(\d+) (\d+)\n$/.exec(text);
  if (!m) throw new Error(`not a loadavg line: ${JSON.stringify(text)}`);
  return {
    printed: [m[1], m[2], m[3]],
    load1: Number(m[1]),
    load5: Number(m[2]),
    load15: Number(m[3]),
    running: Number(m[4]),
    total: Number(m[5]),
  };
}

/** "load average: 0.52, 0.58, 0.59" as uptime, w and top print it. */
export function loadAverageOfTool(output: string): [string, string, string] {
  const m = /load average: (\d+\.\d\d), (\d+\.\d\d), (\d+\.\d\d)/.exec(output);
  if (!m) throw new Error(`no load average in: ${output}`);
  return [m[1], m[2], m[3]];
}

/** A meminfo value in kB. */
export function meminfoKb(text: string, key: string): bigint {
  const m = new RegExp(`^${key.replace(/[()]/g, '\\$&')}:\\s+(\\d+)`, 'm').exec(text);
  if (!m) throw new Error(`${key} missing from:\n${text}`);
  return BigInt(m[1]);
}

/**
 * Host pids of the processes in `cgroup` whose argv is exactly `argv` (e.g. a container's busy
 * loops, to stop them by pid). cgroup.procs lists pids in the reader's pid namespace: ours.
 */
export function pidsInCgroup(cgroup: TestCgroup, argv: readonly string[]): number[] {
  const wanted = argv.map((a) => `${a}\0`).join('');
  const pids: number[] = [];
  for (const line of fs.readFileSync(cgroup.procsFiles[0], 'utf8').split('\n')) {
    if (line === '') continue;
    try {
      if (fs.readFileSync(`/proc/${line}/cmdline`, 'utf8') === wanted) pids.push(Number(line));
    } catch {
      // exited since it was listed
    }
  }
  return pids;
}

/** Waits until `condition` holds, polling every 50 ms; throws `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Probes until `done` holds of the result, every 100 ms; throws `what` and the last result after `timeoutMs`. */
export async function until<T>(what: string, probe: () => Promise<T> | T, done: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (!done(last)) {
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
    last = await probe();
  }
  return last;
}
