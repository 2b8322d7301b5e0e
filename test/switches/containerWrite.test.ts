/**
 * Who may change a container's switch, decided by the backend on an inline /proc (no root, no
 * mount): through a per-container copy only a writer in that container's cgroup or below it;
 * through the shared file the writer's own cgroup. Every refusal is EPERM and a log line.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { constants } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IsolfsBackend } from '../../src/backend';
import { isSameOrBelow } from '../../src/switches/controlWrites';
import { SwitchStore } from '../../src/switches/store';
import { fixtureEnvOptOut } from '../helpers/environ';
import type { HostSources } from '../../src/files';
import { ContainerRegistry } from '../../src/containers/registry';
import type { CgroupHierarchy } from '../../src/cgroup/hierarchy';
import type { CgroupLocation } from '../../src/cgroup/snapshot';
import type { Logger } from '../../src/log';

const FILE = '/proc/sys/kernel/container_stats_isolated' as const;
const CONTAINER = '/kubepods/pod1/ctr';
const HIERARCHY: CgroupHierarchy = {
  cgroupRoot: '/nonexistent', v1: new Map([['memory', '/nonexistent/memory']]), unifiedRoot: null, unifiedControllers: new Set(),
};

interface Fixture {
  backend: IsolfsBackend;
  switches: SwitchStore;
  warnings: string[];
}

function location(key: string): CgroupLocation {
  return { key, version: 1, dirs: { memory: `/nonexistent/memory${key}` }, roots: { memory: '/nonexistent/memory' }, unifiedDir: null };
}

describe('writes to kernel.container_stats_isolated', () => {
  let dir: string;
  let fx: Fixture;

  /** A process `pid` in memory cgroup `cgroup`, in the host pid namespace or a child one. */
  const proc = (pid: number, cgroup: string, nested = false): void => {
    fs.mkdirSync(path.join(dir, 'proc', String(pid)), { recursive: true });
    fs.writeFileSync(path.join(dir, 'proc', String(pid), 'cgroup'), `4:memory:${cgroup}\n0::${cgroup}\n`);
    fs.writeFileSync(path.join(dir, 'proc', String(pid), 'status'), `Name:\tsh\nNSpid:\t${pid}${nested ? '\t1' : ''}\n`);
  };
  const write = async (pid: number, value: string, container?: string) => {
    const grant = fx.backend.authorizeWrite({ file: FILE, caller: { pid, uid: 0, gid: 0 }, container });
    return 'errno' in grant ? grant : await fx.backend.write({ grant, data: Buffer.from(value), offset: 0 });
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-cw-'));
    const warnings: string[] = [];
    const logger = {
      info: () => undefined, error: () => undefined, debug: () => undefined,
      warn: (obj: object, msg: string) => { warnings.push(`${msg} ${JSON.stringify(obj)}`); },
    } as unknown as Logger;
    const switches = SwitchStore.open(path.join(dir, 'state'), logger, true);
    const procRoot = path.join(dir, 'proc');
    const containers = new ContainerRegistry({ idleMs: 60_000 });
    containers.markAttached(location(CONTAINER));
    const backend = new IsolfsBackend({
      procRoot, sysRoot: '/nonexistent', hierarchy: HIERARCHY, switches, envOptOut: fixtureEnvOptOut(procRoot),
      sources: {} as HostSources, containers, logger,
    });
    fx = { backend, switches, warnings };
    proc(100, CONTAINER, true); // the container's init, own pid namespace
    proc(101, `${CONTAINER}/child`, true); // a process in a child cgroup of the container
    proc(200, '/kubepods/pod2/ctr', true); // another container, own pid namespace
    proc(300, '/kubepods/pod1/ctr-other', true); // a sibling whose name extends the key
    proc(400, '/', false); // host root in the host pid namespace
    proc(500, '/kubepods', false); // an ancestor of the container
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lets a writer inside the container, or below it, change its switch through its copy', async () => {
    expect(await write(100, '0', CONTAINER)).toBe(1);
    expect(fx.switches.explicitContainerValue(CONTAINER)).toBe(false);
    expect(await write(101, '1\n', CONTAINER)).toBe(2);
    expect(fx.switches.explicitContainerValue(CONTAINER)).toBe(true);
  });

  it.each([
    ['another container', 200],
    ['a sibling cgroup whose path extends the container\'s', 300],
    ['host root in the host pid namespace', 400],
    ['a process in an ancestor cgroup', 500],
    ['a caller not visible to us (pid 0)', 0],
    ['a caller that exited', 999],
  ])('refuses %s with EPERM and a log line, leaving the switch alone', async (_who, pid) => {
    expect(await write(pid, '0', CONTAINER)).toEqual({ errno: constants.errno.EPERM });
    expect(fx.switches.explicitContainerValue(CONTAINER)).toBeUndefined();
    const refused = fx.warnings.filter((w) => w.startsWith('control write refused'));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(/opener is not in the container whose copy it opens/);
    expect(refused[0]).toContain(`"container":"${CONTAINER}"`);
  });

  it('through the shared file changes only the writer\'s own cgroup', async () => {
    expect(await write(200, '0')).toBe(1);
    expect(fx.switches.explicitContainerValue('/kubepods/pod2/ctr')).toBe(false);
    expect(fx.switches.explicitContainerValue(CONTAINER)).toBeUndefined();
  });

  it('answers ESRCH for a copy whose container is gone', async () => {
    expect(await write(100, '0', '/kubepods/gone')).toEqual({ errno: constants.errno.ESRCH });
  });

  it('lets anyone who sees the copy read its bit', async () => {
    await write(100, '0', CONTAINER);
    const read = fx.backend.read({ file: FILE, caller: { pid: 200, uid: 65534, gid: 65534 }, container: CONTAINER });
    expect(read).toEqual(Buffer.from('0\n'));
  });
});

describe('isSameOrBelow', () => {
  it('compares cgroup paths component-wise', () => {
    expect(isSameOrBelow('/a/b', '/a/b')).toBe(true);
    expect(isSameOrBelow('/a/b/c', '/a/b')).toBe(true);
    expect(isSameOrBelow('/a/bc', '/a/b')).toBe(false);
    expect(isSameOrBelow('/a', '/a/b')).toBe(false);
    expect(isSameOrBelow('/', '/a')).toBe(false);
  });
});
