/**
 * The environment opt-out on an inline /proc and cgroup directory (no root): the oldest process
 * decides, and a planted FIFO or an oversized environment neither blocks nor misleads it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EnvOptOut, oldestProcess } from '../../src/switches/envOptOut';

describe('EnvOptOut', () => {
  let dir: string;
  let procRoot: string;
  let cgroup: string;

  /** A process with start time `startTicks` and environment `env` (or a writer to plant a file). */
  const proc = (pid: number, startTicks: number, env: string | ((file: string) => void)): void => {
    const p = path.join(procRoot, String(pid));
    fs.mkdirSync(p, { recursive: true });
    const fields = ['S', ...Array.from({ length: 18 }, () => '0'), String(startTicks), '0'];
    fs.writeFileSync(path.join(p, 'stat'), `${pid} (my (odd) name) ${fields.join(' ')}\n`);
    if (typeof env === 'string') fs.writeFileSync(path.join(p, 'environ'), env);
    else env(path.join(p, 'environ'));
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-env-'));
    procRoot = path.join(dir, 'proc');
    cgroup = path.join(dir, 'cg');
    fs.mkdirSync(cgroup);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads the declaration of the oldest process only', () => {
    proc(20, 500, 'PATH=/bin\0CONTAINER_STATS_ISOLATED=1\0');
    proc(30, 100, 'PATH=/bin\0CONTAINER_STATS_ISOLATED=0\0');
    fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), '20\n30\n');
    expect(oldestProcess(procRoot, cgroup)).toBe(30);
    expect(new EnvOptOut(procRoot).optedOut('/c', cgroup, 0)).toBe(true);
  });

  it('answers "not opted out" at once for an environ that is a FIFO', () => {
    proc(20, 100, (file) => execFileSync('mkfifo', [file]));
    fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), '20\n');
    const started = Date.now();
    expect(new EnvOptOut(procRoot).optedOut('/c', cgroup, 0)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('does not take a declaration cut at the size cap for a whole one', () => {
    // 256 KiB of environment, then a declaration the cap cuts to "CONTAINER_STATS_ISOLATED=0".
    const filler = `X=${'x'.repeat(256 * 1024 - 2 - 'CONTAINER_STATS_ISOLATED=0'.length - 1)}\0`;
    proc(20, 100, `${filler}CONTAINER_STATS_ISOLATED=0xyz\0`);
    fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), '20\n');
    expect(new EnvOptOut(procRoot).optedOut('/c', cgroup, 0)).toBe(false);
  });

  it('skips garbage in the pid list and processes that are gone', () => {
    proc(30, 100, 'CONTAINER_STATS_ISOLATED=0\0');
    fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), '../../etc\n99\n30\n');
    expect(oldestProcess(procRoot, cgroup)).toBe(30);
  });

  it('caches the answer per container for a while', () => {
    proc(30, 100, 'CONTAINER_STATS_ISOLATED=0\0');
    fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), '30\n');
    const env = new EnvOptOut(procRoot);
    expect(env.optedOut('/c', cgroup, 0)).toBe(true);
    fs.writeFileSync(path.join(procRoot, '30', 'environ'), 'CONTAINER_STATS_ISOLATED=1\0');
    expect(env.optedOut('/c', cgroup, 1000)).toBe(true);
    expect(env.optedOut('/c', cgroup, 31_000)).toBe(false);
  });
});
