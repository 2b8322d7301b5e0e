/**
 * The environment opt-out on an inline /proc and cgroup directory (no root): the container's
 * oldest process decides (the same one /proc/uptime starts from, child cgroups included), and
 * a planted FIFO or an oversized environment neither blocks nor misleads it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ANSWER_TTL_MS, EnvOptOut } from '../../src/switches/envOptOut';
import type { EnvironAnswer, EnvironSource } from '../../src/switches/environReader';
import { fixtureEnvOptOut } from '../helpers/environ';
import { readOldestProcess } from '../../src/cgroup/tasks';
import { ContainerRegistry, type ContainerRecord } from '../../src/containers/registry';
import type { CgroupLocation } from '../../src/cgroup/snapshot';
import type { Logger } from '../../src/log';

describe('EnvOptOut', () => {
  let dir: string;
  let procRoot: string;
  let cgroup: string;
  let location: CgroupLocation;
  let registry: ContainerRegistry;

  /** A process with start time `startTicks` and environment `env` (or a writer to plant a file). */
  const proc = (pid: number, startTicks: number, env: string | ((file: string) => void)): void => {
    const p = path.join(procRoot, String(pid));
    fs.mkdirSync(p, { recursive: true });
    const fields = ['S', ...Array.from({ length: 18 }, () => '0'), String(startTicks), '0'];
    fs.writeFileSync(path.join(p, 'stat'), `${pid} (my (odd) name) ${fields.join(' ')}\n`);
    if (typeof env === 'string') fs.writeFileSync(path.join(p, 'environ'), env);
    else env(path.join(p, 'environ'));
  };
  const listProcs = (cgroupDir: string, pids: number[]): void => {
    fs.mkdirSync(cgroupDir, { recursive: true });
    fs.writeFileSync(path.join(cgroupDir, 'cgroup.procs'), pids.map((p) => `${p}\n`).join(''));
  };
  const record = (): ContainerRecord => registry.use(location, 0);

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-env-'));
    procRoot = path.join(dir, 'proc');
    cgroup = path.join(dir, 'memory', 'c');
    fs.mkdirSync(cgroup, { recursive: true });
    location = { key: '/c', version: 1, dirs: { memory: cgroup }, roots: { memory: path.join(dir, 'memory') }, unifiedDir: null };
    registry = new ContainerRegistry({ idleMs: 60_000 });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads the declaration of the oldest process only', () => {
    proc(20, 500, 'PATH=/bin\0CONTAINER_STATS_ISOLATED=1\0');
    proc(30, 100, 'PATH=/bin\0CONTAINER_STATS_ISOLATED=0\0');
    listProcs(cgroup, [20, 30]);
    expect(fixtureEnvOptOut(procRoot).optedOut(record(), 0)).toBe(true);
  });

  it("takes a child cgroup's older process as the container's first, as /proc/uptime does", () => {
    proc(20, 500, 'CONTAINER_STATS_ISOLATED=1\0');
    proc(40, 100, 'CONTAINER_STATS_ISOLATED=0\0'); // the init, in a child cgroup (systemd inside)
    listProcs(cgroup, [20]);
    listProcs(path.join(cgroup, 'init.scope'), [40]);
    expect(readOldestProcess(location, procRoot)).toEqual({ pid: 40, startTicks: 100n });
    expect(fixtureEnvOptOut(procRoot).optedOut(record(), 0)).toBe(true);
  });

  it('says "not opted out" for a container without processes or without the variable', () => {
    listProcs(cgroup, []);
    expect(fixtureEnvOptOut(procRoot).optedOut(record(), 0)).toBe(false);
    proc(20, 100, 'PATH=/bin\0');
    listProcs(cgroup, [20]);
    expect(fixtureEnvOptOut(procRoot).optedOut(registry.use({ ...location, key: '/d' }, 0), 0)).toBe(false);
  });

  it('answers "not opted out" at once for an environ that is a FIFO', () => {
    proc(20, 100, (file) => execFileSync('mkfifo', [file]));
    listProcs(cgroup, [20]);
    const started = Date.now();
    expect(fixtureEnvOptOut(procRoot).optedOut(record(), 0)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('does not take a declaration cut at the size cap for a whole one', () => {
    // 256 KiB of environment, then a declaration the cap cuts to "CONTAINER_STATS_ISOLATED=0".
    const filler = `X=${'x'.repeat(256 * 1024 - 2 - 'CONTAINER_STATS_ISOLATED=0'.length - 1)}\0`;
    proc(20, 100, `${filler}CONTAINER_STATS_ISOLATED=0xyz\0`);
    listProcs(cgroup, [20]);
    expect(fixtureEnvOptOut(procRoot).optedOut(record(), 0)).toBe(false);
  });

  it("keeps the answer on the container's record for ANSWER_TTL_MS, and a new record reads afresh", () => {
    proc(30, 100, 'CONTAINER_STATS_ISOLATED=0\0');
    listProcs(cgroup, [30]);
    const env = fixtureEnvOptOut(procRoot);
    const first = record();
    expect(env.optedOut(first, 0)).toBe(true);
    fs.writeFileSync(path.join(procRoot, '30', 'environ'), 'CONTAINER_STATS_ISOLATED=1\0');
    expect(env.optedOut(first, ANSWER_TTL_MS - 1)).toBe(true);
    expect(first.envOptOut).toEqual({ atMs: 0, optedOut: true, hung: null });
    expect(env.optedOut(first, ANSWER_TTL_MS)).toBe(false);
    fs.writeFileSync(path.join(procRoot, '30', 'environ'), 'CONTAINER_STATS_ISOLATED=0\0');
    registry.sweep(10 * 60_000); // idle: dropped
    expect(env.optedOut(registry.use(location, 10 * 60_000), 10 * 60_000)).toBe(true);
  });

  describe('when the environ read does not end (an EnvironSource that says so)', () => {
    /** A source answering `next` and counting reads; `stuck` is the pid it is stuck on. */
    const scripted = (): EnvironSource & { next: EnvironAnswer; reads: number; stuck: number | null } => {
      const source = {
        next: { kind: 'timed-out' } as EnvironAnswer,
        reads: 0,
        stuck: null as number | null,
        read: (pid: number): EnvironAnswer => {
          source.reads++;
          if (source.next.kind === 'timed-out') source.stuck = pid;
          return source.next;
        },
        stuckOn: (pid: number) => source.stuck === pid,
        get stuckCount() { return source.stuck === null ? 0 : 1; },
      };
      return source;
    };
    const warnings: object[] = [];
    const errors: object[] = [];
    const logger = { warn: (obj: object) => warnings.push(obj), error: (obj: object) => errors.push(obj) } as unknown as Logger;

    beforeEach(() => {
      warnings.length = 0;
      errors.length = 0;
      proc(30, 100, 'CONTAINER_STATS_ISOLATED=0\0');
      listProcs(cgroup, [30]);
    });

    it('answers "no declaration", marks the process hung and does not read it again while its read is stuck', () => {
      const source = scripted();
      const unanswered: string[] = [];
      const env = new EnvOptOut({ procRoot, environ: source, logger, onUnanswered: (why) => unanswered.push(why) });
      const first = record();
      expect(env.optedOut(first, 0)).toBe(false);
      expect(first.envOptOut).toEqual({ atMs: 0, optedOut: false, hung: { pid: 30, startTicks: 100n } });
      expect(warnings).toEqual([expect.objectContaining({ container: '/c', pid: 30 })]);
      expect(unanswered).toEqual(['timed-out']);
      // Past the TTL, and on a new record of the same container: still stuck, so not read.
      expect(env.optedOut(first, ANSWER_TTL_MS)).toBe(false);
      registry.sweep(10 * 60_000);
      const fresh = registry.use(location, 10 * 60_000);
      expect(env.optedOut(fresh, 10 * 60_000)).toBe(false);
      expect(fresh.envOptOut?.hung).toEqual({ pid: 30, startTicks: 100n });
      expect(source.reads).toBe(1);
      // The stuck read returned (the process let go): read again at the next expiry.
      source.stuck = null;
      source.next = { kind: 'read', optedOut: true };
      expect(env.optedOut(fresh, 10 * 60_000 + 1)).toBe(false); // still within the TTL
      expect(env.optedOut(fresh, 10 * 60_000 + ANSWER_TTL_MS)).toBe(true);
      expect(source.reads).toBe(2);
      expect(fresh.envOptOut?.hung).toBeNull();
    });

    it('with no thread to read: "no declaration" and a loud line; a thread still starting is asked again at the next request', () => {
      const source = scripted();
      const unanswered: string[] = [];
      const env = new EnvOptOut({ procRoot, environ: source, logger, onUnanswered: (why) => unanswered.push(why) });
      source.next = { kind: 'unavailable', why: 'stuck-bound' };
      const first = record();
      expect(env.optedOut(first, 0)).toBe(false);
      expect(errors).toHaveLength(1);
      expect(first.envOptOut).toEqual({ atMs: 0, optedOut: false, hung: null });
      source.next = { kind: 'unavailable', why: 'starting' };
      const second = registry.use({ ...location, key: '/e' }, 0);
      expect(env.optedOut(second, 0)).toBe(false);
      expect(second.envOptOut).toBeNull();
      source.next = { kind: 'read', optedOut: true };
      expect(env.optedOut(second, 1)).toBe(true);
      expect(unanswered).toEqual(['no-thread', 'no-thread']);
    });
  });
});
