/**
 * The container registry's one lifecycle, on cgroup directories under a temp dir (no root):
 * created on first use, refreshed by use, dropped once by the sweep (idle, or cgroup gone),
 * attached containers kept until their cgroup is gone, one hook call per drop; a cgroup
 * recreated under the same key gets a fresh record in place; a sweep checks a bounded batch;
 * the record count is capped.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContainerRegistry, MAX_ATTACHED_PER_TENANT, cgroupDirsOf, type ContainerRecord, type DropReason } from '../../src/containers/registry';
import type { CgroupLocation } from '../../src/cgroup/snapshot';

const IDLE_MS = 10 * 60_000;
const HOUR_MS = 60 * 60_000;

describe('ContainerRegistry', () => {
  let root: string;
  let drops: [string, DropReason][];
  let registry: ContainerRegistry;

  /** A v2 container whose cgroup directory is <root><key> (made unless `make` is false). */
  const location = (key: string, make = true): CgroupLocation => {
    const dir = path.join(root, key);
    if (make) fs.mkdirSync(dir, { recursive: true });
    return { key, version: 2, dirs: {}, roots: {}, unifiedDir: dir };
  };
  const removeCgroup = (key: string): void => fs.rmSync(path.join(root, key), { recursive: true });
  /** The cgroup removed and made again under the same key; the new one made first, so it cannot reuse the inode. */
  const recreateCgroup = (key: string): void => {
    const next = fs.mkdtempSync(path.join(root, 'next-'));
    removeCgroup(key);
    fs.renameSync(next, path.join(root, key));
  };
  /** A cgroup-v1 container without a memory, cpu, cpuacct or pids directory: nothing to stat. */
  const uncheckable = (key: string): CgroupLocation => ({ key, version: 1, dirs: {}, roots: {}, unifiedDir: null });

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-registry-'));
    drops = [];
    registry = new ContainerRegistry({ idleMs: IDLE_MS, onDrop: (record, why) => drops.push([record.key, why]) });
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('creates an empty record on first use and returns the same one, refreshed, after', () => {
    const first = registry.use(location('/a'), 1000);
    expect(first).toMatchObject({ key: '/a', lastUsedMs: 1000, statHistory: null, taskCounts: null, load: null, envOptOut: null, attachedLocation: null });
    const moved = { ...location('/a'), dirs: { memory: '/elsewhere' } };
    const again = registry.use(moved, 2000);
    expect(again).toBe(first);
    expect(again).toMatchObject({ lastUsedMs: 2000, location: moved });
    expect(registry.size).toBe(1);
  });

  it('drops a container unused for the idle time, not before, and calls the hook once', () => {
    registry.use(location('/a'), 0);
    expect(registry.sweep(IDLE_MS - 1)).toBe(0);
    expect(registry.find('/a')).toBeDefined();
    expect(registry.sweep(IDLE_MS)).toBe(1);
    expect(registry.find('/a')).toBeUndefined();
    expect(registry.sweep(IDLE_MS + 1)).toBe(0);
    expect(drops).toEqual([['/a', 'idle']]);
  });

  it('keeps a container that is used, counting idleness from its last use', () => {
    registry.use(location('/a'), 0);
    registry.use(location('/a'), IDLE_MS - 1);
    expect(registry.sweep(IDLE_MS + 1)).toBe(0);
    expect(registry.sweep(2 * IDLE_MS - 1)).toBe(1);
  });

  it('drops a container whose cgroup is gone at the next sweep, idle or not', () => {
    registry.use(location('/a'), 0);
    removeCgroup('/a');
    expect(registry.sweep(1)).toBe(1);
    expect(drops).toEqual([['/a', 'cgroup-gone']]);
  });

  it('keeps an attached container unread for hours, until its cgroup is gone; then drops it once', () => {
    const learned = location('/kubepods/pod1/ctr');
    registry.markAttached(learned);
    expect(registry.attachedLocation('/kubepods/pod1/ctr')).toBe(learned);
    expect(registry.sweep(Date.now() + 5 * HOUR_MS)).toBe(0);
    expect(registry.attachedLocation('/kubepods/pod1/ctr')).toBe(learned);
    removeCgroup('/kubepods/pod1/ctr');
    expect(registry.sweep(Date.now())).toBe(1);
    expect(registry.sweep(Date.now())).toBe(0);
    expect(drops).toEqual([['/kubepods/pod1/ctr', 'cgroup-gone']]);
    expect(registry.attachedLocation('/kubepods/pod1/ctr')).toBeUndefined();
  });

  it("answers reads of an attached copy with the attached location, not a reader's", () => {
    const learned = location('/c');
    registry.markAttached(learned);
    registry.use({ ...location('/c'), dirs: { memory: '/reader/view' } }, Date.now());
    expect(registry.attachedLocation('/c')).toBe(learned);
    expect(registry.attachedLocation('/unknown')).toBeUndefined();
  });

  it('gives a cgroup recreated under the same key a fresh record in place, at the next sweep, without a drop', () => {
    const created: string[] = [];
    const counted = new ContainerRegistry({ idleMs: IDLE_MS, onCreate: (record) => created.push(record.key), onDrop: (record, why) => drops.push([record.key, why]) });
    const old = counted.use(location('/a'), 0);
    old.statHistory = {} as ContainerRecord['statHistory'];
    old.envOptOut = { atMs: 0, optedOut: true, hung: null };
    old.taskCounts = { atMs: 0, counts: { running: 1, blocked: 0, total: 1, truncated: false } };
    old.load = { load1: 1, load5: 1, load15: 1, running: 1, total: 1, sampledPeriod: 0, lastReadMs: 0 };
    recreateCgroup('/a');
    expect(counted.sweep(1)).toBe(0);
    const fresh = counted.find('/a');
    expect(fresh).not.toBe(old);
    expect(fresh).toMatchObject({ key: '/a', statHistory: null, envOptOut: null, taskCounts: null, load: null, attachedLocation: null });
    expect(fresh?.cgroupDir?.ino).toBe(fs.statSync(path.join(root, 'a')).ino);
    expect(created).toEqual(['/a', '/a']);
    expect(counted.sweep(2)).toBe(0);
    expect(counted.find('/a')).toBe(fresh);
    expect(drops).toEqual([]);
  });

  it("keeps a recreated attached container's subtree, with a fresh record, when the attach manager re-attaches first", () => {
    const old = registry.use(location('/docker/x'), Date.now());
    registry.markAttached(location('/docker/x'));
    old.statHistory = {} as ContainerRecord['statHistory'];
    recreateCgroup('/docker/x');
    const learned = location('/docker/x');
    registry.markAttached(learned);
    const fresh = registry.find('/docker/x');
    expect(fresh).not.toBe(old);
    expect(fresh).toMatchObject({ statHistory: null, attachedLocation: learned });
    // The next sweeps see the cgroup the record is for: no drop, no hook, the subtree stays.
    expect(registry.sweep(Date.now())).toBe(0);
    expect(registry.sweep(Date.now() + 5 * HOUR_MS)).toBe(0);
    expect(registry.attachedLocation('/docker/x')).toBe(learned);
    expect(drops).toEqual([]);
    removeCgroup('/docker/x');
    expect(registry.sweep(Date.now())).toBe(1);
    expect(drops).toEqual([['/docker/x', 'cgroup-gone']]);
  });

  it('keeps the attach state of a recreated container the attach manager does not re-attach (its mount still looks right)', () => {
    const learned = location('/lxc/web');
    registry.markAttached(learned);
    const old = registry.use(location('/lxc/web'), Date.now());
    old.envOptOut = { atMs: 0, optedOut: true, hung: null };
    recreateCgroup('/lxc/web');
    expect(registry.sweep(Date.now())).toBe(0);
    expect(registry.find('/lxc/web')).toMatchObject({ envOptOut: null, attachedLocation: learned });
    expect(registry.sweep(Date.now() + 5 * HOUR_MS)).toBe(0);
    expect(drops).toEqual([]);
  });

  it('tenantOf: the outermost attached container at or above a cgroup, else the cgroup; never the root cgroup', () => {
    expect(registry.tenantOf('/pods/p1/ctr/child')).toBe('/pods/p1/ctr/child');
    registry.use(location('/pods/p1'), 0); // a record, not attached: no tenant
    registry.markAttached(location('/pods/p1/ctr'));
    registry.markAttached(location('/pods/p1/ctr/child/nested')); // a child the container got attached
    expect(registry.tenantOf('/pods/p1/ctr')).toBe('/pods/p1/ctr');
    expect(registry.tenantOf('/pods/p1/ctr/child')).toBe('/pods/p1/ctr');
    expect(registry.tenantOf('/pods/p1/ctr/child/nested/deeper')).toBe('/pods/p1/ctr');
    expect(registry.tenantOf('/pods/p1/ctrl')).toBe('/pods/p1/ctrl'); // a path, not a prefix
    expect(registry.tenantOf('/pods/p1')).toBe('/pods/p1');
    registry.markAttached(uncheckable('/'));
    expect(registry.tenantOf('/pods/p2')).toBe('/pods/p2');
  });

  it('mayAttach: at most MAX_ATTACHED_PER_TENANT at or below an attached container; others, and one attached already, always', () => {
    expect(registry.mayAttach('/pods/p1/ctr')).toBe(true); // nothing attached above it
    registry.markAttached(location('/pods/p1/ctr'));
    for (let i = 1; i < MAX_ATTACHED_PER_TENANT; i++) {
      expect(registry.mayAttach(`/pods/p1/ctr/c${i}`)).toBe(true);
      registry.markAttached(location(`/pods/p1/ctr/c${i}`));
    }
    expect(registry.mayAttach('/pods/p1/ctr/another')).toBe(false);
    expect(registry.mayAttach('/pods/p1/ctr/c1/deeper')).toBe(false);
    expect(registry.mayAttach('/pods/p1/ctr/c1')).toBe(true); // has its subtree already
    expect(registry.mayAttach('/pods/p1/ctrl')).toBe(true); // a path, not a prefix
    expect(registry.mayAttach('/pods/p2/ctr/child')).toBe(true);
  });

  it('keeps the record, state and all, when the attach manager marks a container whose cgroup is the same', () => {
    const record = registry.use(location('/a'), 0);
    record.statHistory = {} as ContainerRecord['statHistory'];
    registry.markAttached(location('/a'));
    expect(registry.find('/a')).toBe(record);
    expect(record.statHistory).not.toBeNull();
  });

  it('drops an attached container whose directory was already gone when marked, as gone, at the next sweep', () => {
    registry.markAttached(location('/exited', false));
    expect(registry.sweep(Date.now())).toBe(1);
    expect(drops).toEqual([['/exited', 'cgroup-gone']]);
  });

  it('identifies an attached container whose directory appears later, and keeps it for hours', () => {
    const before = location('/late', false);
    registry.markAttached(before);
    expect(registry.find('/late')?.cgroupDir).toBeNull();
    location('/late');
    expect(registry.sweep(Date.now())).toBe(0);
    expect(registry.find('/late')).toMatchObject({ attachedLocation: before, cgroupDir: { path: path.join(root, 'late') } });
    expect(registry.sweep(Date.now() + 5 * HOUR_MS)).toBe(0);
    removeCgroup('/late');
    expect(registry.sweep(Date.now())).toBe(1);
    expect(drops).toEqual([['/late', 'cgroup-gone']]);
  });

  it('keeps an attached container with no directory to check for as long as it is attached', () => {
    registry.markAttached(uncheckable('/v1/ctr'));
    expect(registry.sweep(Date.now() + 5 * HOUR_MS)).toBe(0);
    expect(registry.attachedLocation('/v1/ctr')).toBeDefined();
  });

  it('applies the idle rule alone to an unattached container with no directory to check', () => {
    registry.use(uncheckable('/v1/ctr'), 0);
    expect(registry.sweep(IDLE_MS - 1)).toBe(0);
    expect(registry.sweep(IDLE_MS)).toBe(1);
    expect(drops).toEqual([['/v1/ctr', 'idle']]);
  });

  it('checks at most maxChecksPerSweep records per sweep, round robin, across drops and new records', () => {
    const bounded = new ContainerRegistry({ idleMs: IDLE_MS, maxChecksPerSweep: 4, onDrop: (record, why) => drops.push([record.key, why]) });
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'].map((name) => `/${name}`);
    for (const key of keys) bounded.use(location(key), 0);
    expect(bounded.sweep(1)).toBe(0); // checks /a-/d, all there
    for (const key of keys) removeCgroup(key);
    bounded.use(location('/k', false), 0); // unidentified, unattached: the idle rule
    const droppedBySweep: string[][] = [];
    for (let sweep = 0; sweep < 4; sweep++) {
      drops = [];
      bounded.sweep(2 * sweep + 2);
      droppedBySweep.push(drops.map(([key]) => key));
    }
    // Goes on from /e; /k, made meanwhile, is checked in turn; then from the start again, none twice.
    expect(droppedBySweep).toEqual([['/e', '/f', '/g', '/h'], ['/i', '/j', '/a'], ['/b', '/c', '/d'], []]);
    expect([...bounded.all()].map((record) => record.key)).toEqual(['/k']);
  });

  it('evicts the least recently used unattached record when a new one would pass maxRecords', () => {
    const capped = new ContainerRegistry({ idleMs: IDLE_MS, maxRecords: 3, onDrop: (record, why) => drops.push([record.key, why]) });
    capped.markAttached(location('/attached'));
    capped.use(location('/a'), 1);
    capped.use(location('/b'), 2);
    capped.use(location('/a'), 3);
    capped.use(location('/c'), 4);
    expect(drops).toEqual([['/b', 'evicted']]);
    expect([...capped.all()].map((record) => record.key).sort((x, y) => x.localeCompare(y))).toEqual(['/a', '/attached', '/c']);
    // Attached records are never evicted: with nothing else to evict, the registry grows.
    const allAttached = new ContainerRegistry({ idleMs: IDLE_MS, maxRecords: 1 });
    allAttached.markAttached(location('/x'));
    allAttached.markAttached(location('/y'));
    expect(allAttached.size).toBe(2);
  });

  it('rejects a zero sweep bound or record cap', () => {
    expect(() => new ContainerRegistry({ idleMs: IDLE_MS, maxChecksPerSweep: 0 })).toThrow(RangeError);
    expect(() => new ContainerRegistry({ idleMs: IDLE_MS, maxRecords: 0 })).toThrow(RangeError);
  });

  it('drops a record once even when the hook throws', () => {
    let calls = 0;
    const throwing = new ContainerRegistry({ idleMs: IDLE_MS, onDrop: () => { calls++; throw new Error('hook failed'); } });
    throwing.use(location('/a'), 0);
    expect(() => throwing.sweep(IDLE_MS)).toThrow('hook failed');
    expect(throwing.sweep(IDLE_MS)).toBe(0);
    expect(calls).toBe(1);
  });

  it('lists every record', () => {
    registry.use(location('/a'), 0);
    registry.markAttached(location('/b'));
    expect([...registry.all()].map((r) => r.key).sort((a, b) => a.localeCompare(b))).toEqual(['/a', '/b']);
  });
});

describe('cgroupDirsOf', () => {
  it("lists every cgroup directory of the record's location and attached location (their kept files close when it goes)", () => {
    const registry = new ContainerRegistry({ idleMs: 1000 });
    const location: CgroupLocation = {
      key: '/k', version: 1, dirs: { memory: '/m/k', cpuacct: '/a/k' }, roots: { memory: '/m', cpuacct: '/a' }, unifiedDir: '/u/k',
    };
    const record = registry.use(location, 0);
    expect(cgroupDirsOf(record)).toEqual(['/m/k', '/a/k', '/u/k']);
    registry.markAttached({ ...location, dirs: { memory: '/m/k2' }, unifiedDir: null });
    expect(cgroupDirsOf(record)).toEqual(['/m/k', '/a/k', '/u/k', '/m/k2']);
  });
});
