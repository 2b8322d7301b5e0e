/**
 * IsolfsBackend's decision, on a fixture /proc and cgroup v2 tree under a temp dir (no root, no
 * FUSE): for every host switch x container switch x env opt-out x kind of caller, whether the
 * reader gets the host's file or its container's view. The probe file is
 * /sys/devices/system/cpu/online: "0-3" on the host, "0" in the container (a 1-CPU quota).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { constants } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IsolfsBackend, RENDER_REUSE_MS } from '../../src/backend';
import { SwitchStore } from '../../src/switches/store';
import { fixtureEnvOptOut } from '../helpers/environ';
import { TimedCache, type HostSources } from '../../src/files';
import { ContainerRegistry } from '../../src/containers/registry';
import { discoverHierarchy } from '../../src/cgroup/hierarchy';
import { locateProcess } from '../../src/identity/processCgroup';
import type { LoadavgSampler } from '../../src/loadavg/sampler';
import type { Logger } from '../../src/log';
import { writeTree } from '../cgroup/helpers';

const E = constants.errno;
const ONLINE = '/sys/devices/system/cpu/online' as const;
const CONTAINER = '/kubepods/ctr';
const HOST_VIEW = '0-3\n';
const CONTAINER_VIEW = '0\n';

type CallerKind = 'pid 0' | 'vanished pid' | 'malformed /proc/<pid>/cgroup' | 'outside our cgroup namespace'
  | 'root cgroup' | 'container' | 'attached copy of a known container' | 'attached copy of an unknown container';
/** pid of each caller (and the attached copy read, if any). */
const CALLERS: Record<CallerKind, { pid: number; copy?: string }> = {
  'pid 0': { pid: 0 },
  'vanished pid': { pid: 999 },
  'malformed /proc/<pid>/cgroup': { pid: 300 },
  'outside our cgroup namespace': { pid: 400 },
  'root cgroup': { pid: 1 },
  'container': { pid: 100 },
  // A reader anywhere (here the host's root) reading a container's per-container copy.
  'attached copy of a known container': { pid: 1, copy: CONTAINER },
  'attached copy of an unknown container': { pid: 1, copy: '/kubepods/gone' },
};

interface Case {
  hostIsolated: boolean;
  explicit: boolean | undefined;
  envOptOut: boolean;
  caller: CallerKind;
}

/** What the reader gets: the rule the backend implements, written as a table. */
function expected(c: Case): string | 'ENOENT' {
  if (c.caller === 'attached copy of an unknown container') return 'ENOENT';
  if (!c.hostIsolated) return HOST_VIEW;
  if (c.caller !== 'container' && c.caller !== 'attached copy of a known container') return HOST_VIEW;
  if (c.explicit !== undefined) return c.explicit ? CONTAINER_VIEW : HOST_VIEW;
  return c.envOptOut ? HOST_VIEW : CONTAINER_VIEW;
}

const CASES: Case[] = [];
for (const hostIsolated of [true, false]) {
  for (const explicit of [undefined, true, false]) {
    for (const envOptOut of [false, true]) {
      for (const caller of Object.keys(CALLERS) as CallerKind[]) CASES.push({ hostIsolated, explicit, envOptOut, caller });
    }
  }
}

function describeCase(c: Case): string {
  const result = expected(c);
  const outcome = result === 'ENOENT' ? 'ENOENT' : result === HOST_VIEW ? "the host's file" : "the container's view";
  const explicit = c.explicit === undefined ? 'unset' : c.explicit ? '1' : '0';
  return `host switch ${c.hostIsolated ? 1 : 0}, container switch ${explicit}, env opt-out ${c.envOptOut ? 'set' : 'absent'}, ${c.caller}: ${outcome}`;
}

interface Fixture {
  dir: string;
  backend: IsolfsBackend;
  switches: SwitchStore;
  containers: ContainerRegistry;
}

/** A process: its /proc/<pid>/cgroup text, its NSpid line, its environment. */
function writeProcess(procRoot: string, pid: number, { cgroup, nspid, environ = '' }: { cgroup: string; nspid: string; environ?: string }): void {
  writeTree(procRoot, {
    [`${pid}/cgroup`]: cgroup,
    [`${pid}/status`]: `Name:\tsh\nNSpid:\t${nspid}\n`,
    [`${pid}/stat`]: `${pid} (sh) S 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 ${1000 + pid} 0 0\n`,
    [`${pid}/environ`]: environ,
  });
}

function makeFixture(envOptOut: boolean): Fixture {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-backend-'));
  const procRoot = path.join(dir, 'proc');
  const sysRoot = path.join(dir, 'sys');
  writeTree(dir, {
    'cgroup/cgroup.controllers': 'cpu memory\n',
    'cgroup/cgroup.procs': '1\n',
    [`cgroup${CONTAINER}/cgroup.procs`]: '100\n',
    [`cgroup${CONTAINER}/cpu.max`]: '100000 100000\n',
    'sys/devices/system/cpu/online': HOST_VIEW,
    'sys/devices/system/cpu/possible': '0-3\n',
  });
  writeProcess(procRoot, 1, { cgroup: '0::/\n', nspid: '1' });
  writeProcess(procRoot, 100, { cgroup: `0::${CONTAINER}\n`, nspid: '100\t1', environ: envOptOut ? 'PATH=/bin\0CONTAINER_STATS_ISOLATED=0\0' : 'PATH=/bin\0' });
  writeProcess(procRoot, 300, { cgroup: 'not a cgroup line\n', nspid: '300' });
  writeProcess(procRoot, 400, { cgroup: '0::/../elsewhere\n', nspid: '400' });
  const logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as unknown as Logger;
  const hierarchy = discoverHierarchy(path.join(dir, 'cgroup'), sysRoot);
  const switches = SwitchStore.open(path.join(dir, 'state'), logger, true);
  const containers = new ContainerRegistry({ idleMs: 60_000 });
  const sources: HostSources = {
    procRoot, sysRoot, userHz: 100, pageSizeBytes: 4096n, maxTasksPerRead: 1000,
    sampler: {} as LoadavgSampler, cpuinfoCache: new TimedCache(1000, () => []),
  };
  const backend = new IsolfsBackend({ procRoot, sysRoot, hierarchy, switches, envOptOut: fixtureEnvOptOut(procRoot), sources, containers, logger });
  // What the attach manager does once it made the container's subtree, with the location it
  // learned from one of the container's processes.
  const init = locateProcess(procRoot, hierarchy, 100);
  if (!init.found) throw new Error(init.why);
  containers.markAttached(init.location);
  return { dir, backend, switches, containers };
}

function readAs(fx: Fixture, caller: { pid: number; copy?: string }, file: typeof ONLINE | '/proc/sys/kernel/container_stats_isolated' = ONLINE): string | 'ENOENT' | number {
  const result = fx.backend.read({ file, caller: { pid: caller.pid, uid: 0, gid: 0 }, container: caller.copy });
  if (Buffer.isBuffer(result)) return result.toString();
  return result.errno === E.ENOENT ? 'ENOENT' : result.errno;
}

describe('IsolfsBackend decision', () => {
  const fixtures: Fixture[] = [];
  afterEach(() => {
    for (const fx of fixtures.splice(0)) fs.rmSync(fx.dir, { recursive: true, force: true });
  });
  const fixture = (envOptOut = false): Fixture => {
    const fx = makeFixture(envOptOut);
    fixtures.push(fx);
    return fx;
  };

  it.each(CASES.map((c) => [describeCase(c), c] as const))('%s', (_name, c) => {
    const fx = fixture(c.envOptOut);
    if (c.explicit !== undefined) fx.switches.setContainer(CONTAINER, c.explicit);
    fx.switches.setHostIsolated(c.hostIsolated);
    expect(readAs(fx, CALLERS[c.caller])).toBe(expected(c));
  });

  it('gives each kind of caller it cannot place the reason "unknown-caller"', () => {
    const fx = fixture();
    for (const pid of [0, 999, 300, 400]) expect(fx.backend.decide({ pid, uid: 0, gid: 0 })).toEqual({ isolated: false, reason: 'unknown-caller' });
    expect(fx.backend.decide({ pid: 1, uid: 0, gid: 0 })).toEqual({ isolated: false, reason: 'root-cgroup' });
  });

  it("keeps a record for a container it decided about, and none for the root cgroup or unknown callers", () => {
    const fx = fixture();
    const before = fx.containers.size; // the attached container
    for (const pid of [0, 999, 300, 400, 1]) fx.backend.read({ file: ONLINE, caller: { pid, uid: 0, gid: 0 } });
    expect(fx.containers.size).toBe(before);
    expect(fx.containers.find(CONTAINER)?.lastUsedMs).toBeGreaterThan(0);
  });

  it("reads the container switch as the container's decision: explicit value, else the env opt-out", () => {
    const optedOut = fixture(true);
    const control = '/proc/sys/kernel/container_stats_isolated' as const;
    expect(readAs(optedOut, CALLERS.container, control)).toBe('0\n');
    expect(readAs(optedOut, CALLERS['attached copy of a known container'], control)).toBe('0\n');
    optedOut.switches.setContainer(CONTAINER, true);
    expect(readAs(optedOut, CALLERS.container, control)).toBe('1\n');
    expect(readAs(optedOut, CALLERS['root cgroup'], control)).toBe('1\n');
    expect(readAs(optedOut, CALLERS['vanished pid'], control)).toBe(E.ESRCH);
  });
});

describe('IsolfsBackend control-file writes', () => {
  let fx: Fixture;
  beforeEach(() => {
    fx = makeFixture(false);
  });
  afterEach(() => fs.rmSync(fx.dir, { recursive: true, force: true }));
  /** Opens for writing (authorizeWrite: the permission is the opener's, decided at open), then writes. */
  const write = async (file: '/proc/sys/kernel/stats_isolated' | '/proc/sys/kernel/container_stats_isolated', { pid, uid }: { pid: number; uid: number }, value: string, copy?: string) => {
    const grant = fx.backend.authorizeWrite({ file, caller: { pid, uid, gid: uid }, container: copy });
    return 'errno' in grant ? grant : await fx.backend.write({ grant, data: Buffer.from(value), offset: 0 });
  };

  it('refuses the host switch to an opener that is not uid 0 (EACCES, as /proc/sys answers at open), leaving it unchanged', async () => {
    expect(await write('/proc/sys/kernel/stats_isolated', { pid: 1, uid: 1000 }, '0')).toEqual({ errno: E.EACCES });
    expect(fx.switches.hostIsolated).toBe(true);
  });

  it('refuses the host switch to root in a child pid namespace (NSpid with 2 ids)', async () => {
    expect(await write('/proc/sys/kernel/stats_isolated', { pid: 100, uid: 0 }, '0')).toEqual({ errno: E.EPERM });
    expect(fx.switches.hostIsolated).toBe(true);
  });

  it('lets root in the host pid namespace turn the host switch off', async () => {
    expect(await write('/proc/sys/kernel/stats_isolated', { pid: 1, uid: 0 }, '0\n')).toBe(2);
    expect(fx.switches.hostIsolated).toBe(false);
  });

  it("refuses a container's switch through its attached copy to a writer outside it, even host root", async () => {
    expect(await write('/proc/sys/kernel/container_stats_isolated', { pid: 1, uid: 0 }, '0', CONTAINER)).toEqual({ errno: E.EPERM });
    expect(fx.switches.explicitContainerValue(CONTAINER)).toBeUndefined();
    expect(await write('/proc/sys/kernel/container_stats_isolated', { pid: 100, uid: 0 }, '0', CONTAINER)).toBe(1);
    expect(fx.switches.explicitContainerValue(CONTAINER)).toBe(false);
  });

  it("answers ESRCH for a write through the copy of a container that is not attached", async () => {
    expect(await write('/proc/sys/kernel/container_stats_isolated', { pid: 100, uid: 0 }, '0', '/kubepods/gone')).toEqual({ errno: E.ESRCH });
  });
});

describe('IsolfsBackend content of attached files (the container-views tree)', () => {
  let fx: Fixture;
  beforeEach(() => {
    fx = makeFixture(false);
  });
  afterEach(() => fs.rmSync(fx.dir, { recursive: true, force: true }));
  const current = (container = CONTAINER) => fx.backend.currentContent({ file: ONLINE, container });
  const cpuMax = () => path.join(fx.dir, `cgroup${CONTAINER}`, 'cpu.max');

  it('keeps the version while the bytes stay the same, and gives a new one (never reused) when they change', async () => {
    const first = current();
    if (!('bytes' in first)) throw new Error(`errno ${first.errno}`);
    expect(first.bytes.toString()).toBe(CONTAINER_VIEW);
    const again = current();
    expect(again).toEqual(first);
    // Two CPUs' quota: the view changes once the render reuse (50 ms) has passed.
    fs.writeFileSync(cpuMax(), '200000 100000\n');
    await new Promise((r) => setTimeout(r, RENDER_REUSE_MS + 10));
    const changed = current();
    if (!('bytes' in changed)) throw new Error(`errno ${changed.errno}`);
    expect(changed.bytes.toString()).toBe('0-1\n');
    expect(changed.version).toBeGreaterThan(first.version);
    // Back to the first bytes: a newer version still (the kernel may hold pages of the middle one).
    fs.writeFileSync(cpuMax(), '100000 100000\n');
    await new Promise((r) => setTimeout(r, RENDER_REUSE_MS + 10));
    const back = current();
    if (!('bytes' in back)) throw new Error(`errno ${back.errno}`);
    expect(back.bytes.toString()).toBe(CONTAINER_VIEW);
    expect(back.version).toBeGreaterThan(changed.version);
    // Kept in the container's one record.
    expect(fx.containers.find(CONTAINER)?.pageContent?.get(ONLINE)).toEqual(back);
  });

  it('reuses a render for RENDER_REUSE_MS: every reader of the container within it gets the same bytes', () => {
    expect(readAs(fx, CALLERS.container)).toBe(CONTAINER_VIEW);
    fs.writeFileSync(cpuMax(), '200000 100000\n');
    expect(readAs(fx, CALLERS.container)).toBe(CONTAINER_VIEW); // within 50 ms: the same render
    const record = fx.containers.find(CONTAINER);
    const rendered = record?.rendered?.get(ONLINE);
    if (rendered) rendered.atMs -= RENDER_REUSE_MS; // as if 50 ms had passed
    expect(readAs(fx, CALLERS.container)).toBe('0-1\n');
  });

  it('follows the switches at once (decisions are never reused), and answers ENOENT for a container not attached', () => {
    expect(current()).toMatchObject({ bytes: Buffer.from(CONTAINER_VIEW) });
    fx.switches.setContainer(CONTAINER, false);
    expect(current()).toMatchObject({ bytes: Buffer.from(HOST_VIEW) });
    expect(current('/kubepods/gone')).toEqual({ errno: E.ENOENT });
  });
});
