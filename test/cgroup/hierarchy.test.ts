import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  controllerVersion,
  discoverHierarchy,
  locateCgroup,
  type CgroupHierarchy,
} from '../../src/cgroup/hierarchy';
import { parseProcCgroup } from '../../src/identity/procCgroup';

const FIXTURES = path.join(__dirname, '../fixtures/cgroup');

describe('discoverHierarchy', () => {
  it('finds v1 mounts, preferring the real co-mounted directory over its symlinks', () => {
    const root = `${FIXTURES}/v1`;
    const h = discoverHierarchy(root);
    expect(h.cgroupRoot).toBe(root);
    expect(h.v1.get('cpu')).toBe(`${root}/cpu,cpuacct`);
    expect(h.v1.get('cpuacct')).toBe(`${root}/cpu,cpuacct`);
    expect(h.v1.get('memory')).toBe(`${root}/memory`);
    expect(h.v1.get('cpuset')).toBe(`${root}/cpuset`);
    expect(h.v1.get('pids')).toBe(`${root}/pids`);
    expect(h.v1.has('blkio')).toBe(false); // not mounted in this fixture
    expect(h.unifiedRoot).toBeNull();
    expect(h.unifiedControllers.size).toBe(0);
  });

  it('finds a hybrid layout: v1 mounts plus cgroup2 at unified/ without v1 controllers', () => {
    const root = `${FIXTURES}/hybrid`;
    const h = discoverHierarchy(root);
    expect([...h.v1.keys()].sort((a, b) => a.localeCompare(b))).toEqual(['blkio', 'cpu', 'cpuacct', 'cpuset', 'memory', 'pids']);
    expect(h.v1.get('cpu')).toBe(`${root}/cpu`);
    expect(h.v1.get('cpuacct')).toBe(`${root}/cpuacct`);
    expect(h.unifiedRoot).toBe(`${root}/unified`);
    // "hugetlb" is the only v2 controller there, and isolfs does not read it.
    expect(h.unifiedControllers.size).toBe(0);
  });

  it('finds pure v2 and never mistakes its child cgroups for v1 mounts', () => {
    const root = `${FIXTURES}/v2`;
    const h = discoverHierarchy(root);
    expect(h.v1.size).toBe(0);
    expect(h.unifiedRoot).toBe(root);
    expect([...h.unifiedControllers].sort((a, b) => a.localeCompare(b))).toEqual(['cpu', 'cpuset', 'io', 'memory', 'pids']);
  });

  it('discovers the live /sys/fs/cgroup of this machine', () => {
    const h = discoverHierarchy('/sys/fs/cgroup');
    const pureV2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
    // Pure v2: the unified root is /sys/fs/cgroup itself; otherwise memory has its v1 mount.
    const memoryRoot = pureV2 ? h.unifiedRoot : h.v1.get('memory');
    expect(memoryRoot).toBe(pureV2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/memory');
  });

  describe('with a root that holds no cgroup mount', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-nocg-'));
    afterAll(() => fs.rmSync(empty, { recursive: true, force: true }));
    it('throws naming the root', () => {
      fs.mkdirSync(path.join(empty, 'memory')); // a directory, but not a cgroup mount
      expect(() => discoverHierarchy(empty)).toThrow(`no cgroup v1 controller mount and no cgroup2 mount found under ${empty}`);
    });
  });
});

describe('locateCgroup', () => {
  it('places a hybrid task per controller and keys it by its memory path (version 1)', () => {
    const root = `${FIXTURES}/hybrid`;
    const h = discoverHierarchy(root);
    const loc = locateCgroup(
      h,
      parseProcCgroup('4:memory:/process_api/6000fa4733e63b5c029e087d057f3e65\n2:cpuacct:/\n1:cpu:/\n0::/\n'),
    );
    expect(loc.key).toBe('/process_api/6000fa4733e63b5c029e087d057f3e65');
    expect(loc.version).toBe(1);
    expect(loc.dirs.memory).toBe(`${root}/memory/process_api/6000fa4733e63b5c029e087d057f3e65`);
    expect(loc.roots.memory).toBe(`${root}/memory`);
    expect(loc.dirs.cpu).toBe(`${root}/cpu`);
    expect(loc.dirs.cpuset).toBeUndefined(); // no cpuset line for this task
    expect(loc.unifiedDir).toBe(`${root}/unified`);
    expect(controllerVersion(loc, 'memory')).toBe(1);
    expect(controllerVersion(loc, 'cpuset')).toBeNull();
  });

  it('places a v2 task in one directory for every v2 controller (version 2)', () => {
    const root = `${FIXTURES}/v2`;
    const loc = locateCgroup(discoverHierarchy(root), parseProcCgroup('0::/kubepods.slice/pod-a.slice/container-a.scope\n'));
    const dir = `${root}/kubepods.slice/pod-a.slice/container-a.scope`;
    expect(loc.key).toBe('/kubepods.slice/pod-a.slice/container-a.scope');
    expect(loc.version).toBe(2);
    for (const c of ['memory', 'cpu', 'cpuset', 'io', 'pids'] as const) {
      expect(loc.dirs[c]).toBe(dir);
      expect(loc.roots[c]).toBe(root);
      expect(controllerVersion(loc, c)).toBe(2);
    }
    expect(loc.dirs.cpuacct).toBeUndefined();
    expect(loc.unifiedDir).toBe(dir);
  });

  it('maps the root cgroup "/" to the hierarchy root itself', () => {
    const root = `${FIXTURES}/v2`;
    const loc = locateCgroup(discoverHierarchy(root), parseProcCgroup('0::/\n'));
    expect(loc.key).toBe('/');
    expect(loc.dirs.memory).toBe(root);
  });

  it('uses the unified path as the key when memory is on v2 in a hybrid layout', () => {
    const h: CgroupHierarchy = {
      cgroupRoot: '/cg',
      v1: new Map([['cpu', '/cg/cpu']]),
      unifiedRoot: '/cg/unified',
      unifiedControllers: new Set(['memory']),
    };
    const loc = locateCgroup(h, parseProcCgroup('1:cpu:/c1\n0::/u1\n'));
    expect(loc.key).toBe('/u1');
    expect(loc.version).toBe(2);
    expect(loc.dirs.memory).toBe('/cg/unified/u1');
    expect(loc.dirs.cpu).toBe('/cg/cpu/c1');
    expect(controllerVersion(loc, 'cpu')).toBe(1);
    expect(controllerVersion(loc, 'memory')).toBe(2);
  });

  it('falls back to the unified path, then "/", when there is no memory controller', () => {
    const h: CgroupHierarchy = { cgroupRoot: '/cg', v1: new Map([['cpu', '/cg/cpu']]), unifiedRoot: '/cg/unified', unifiedControllers: new Set() };
    expect(locateCgroup(h, parseProcCgroup('1:cpu:/c\n0::/u\n')).key).toBe('/u');
    expect(locateCgroup(h, parseProcCgroup('1:cpu:/c\n')).key).toBe('/');
    expect(locateCgroup(h, parseProcCgroup('1:cpu:/c\n')).version).toBe(1);
  });

  it('gives no directory for a path outside our cgroup namespace, keeping it as the key', () => {
    const root = `${FIXTURES}/v2`;
    const loc = locateCgroup(discoverHierarchy(root), parseProcCgroup('0::/../../x.scope\n'));
    expect(loc.key).toBe('/../../x.scope');
    expect(loc.dirs).toEqual({});
    expect(loc.unifiedDir).toBeNull();
  });
});
