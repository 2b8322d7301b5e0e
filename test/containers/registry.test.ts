/**
 * The container registry's one lifecycle, on cgroup directories under a temp dir (no root):
 * created on first use, refreshed by use, dropped once by the sweep (idle, or cgroup gone),
 * attached containers kept until their cgroup is gone, one hook call per drop.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContainerRegistry, type ContainerRecord, type DropReason } from '../../src/containers/registry';
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

  it('treats a cgroup recreated under the same key as a new container: dropped, then afresh', () => {
    const old = registry.use(location('/a'), 0);
    old.statHistory = {} as ContainerRecord['statHistory'];
    old.envOptOut = { atMs: 0, optedOut: true };
    // A new directory made before the old one goes, so it cannot reuse the old inode.
    fs.mkdirSync(path.join(root, 'new'));
    removeCgroup('/a');
    fs.renameSync(path.join(root, 'new'), path.join(root, 'a'));
    expect(registry.sweep(1)).toBe(1);
    const fresh = registry.use(location('/a'), 2);
    expect(fresh).not.toBe(old);
    expect(fresh).toMatchObject({ statHistory: null, envOptOut: null, lastUsedMs: 2 });
    expect(registry.sweep(3)).toBe(0);
  });

  it('drops a record once even when the hook throws', () => {
    let calls = 0;
    const throwing = new ContainerRegistry({ idleMs: IDLE_MS, onDrop: () => { calls++; throw new Error('hook failed'); } });
    throwing.use(location('/a'), 0);
    expect(() => throwing.sweep(IDLE_MS)).toThrow('hook failed');
    expect(throwing.sweep(IDLE_MS)).toBe(0);
    expect(calls).toBe(1);
  });

  it('falls back to the idle policy for an attached container it cannot check', () => {
    registry.markAttached(location('/never-made', false));
    expect(registry.sweep(Date.now())).toBe(0);
    expect(registry.sweep(Date.now() + IDLE_MS)).toBe(1);
    expect(drops).toEqual([['/never-made', 'idle']]);
  });

  it('lists every record', () => {
    registry.use(location('/a'), 0);
    registry.markAttached(location('/b'));
    expect([...registry.all()].map((r) => r.key).sort((a, b) => a.localeCompare(b))).toEqual(['/a', '/b']);
  });
});
