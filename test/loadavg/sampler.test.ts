import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { TaskCounts } from '../../src/cgroup/snapshot';
import { calcLoad, calcLoadN, EXP_1, EXP_15, EXP_5, FIXED_1, formatLoad } from '../../src/loadavg/kernelLoad';
import { LoadavgSampler, type LoadavgSamplerOptions } from '../../src/loadavg/sampler';
import { ContainerRegistry, type ContainerRecord } from '../../src/containers/registry';
import type { CgroupLocation } from '../../src/cgroup/snapshot';

const INTERVAL_MS = 5000;
const IDLE_MS = 10 * 60_000;

/** A registry whose records have no cgroup directory (nothing to stat), and a sampler over it. */
function setUp(options: Omit<LoadavgSamplerOptions, 'containers'>): { sampler: LoadavgSampler; registry: ContainerRegistry; container: (key: string) => ContainerRecord } {
  const registry = new ContainerRegistry({ idleMs: IDLE_MS });
  const sampler = new LoadavgSampler({ containers: () => registry.all(), ...options });
  const container = (key: string): ContainerRecord => registry.use(locationOf(key), Date.now());
  return { sampler, registry, container };
}

function locationOf(key: string): CgroupLocation {
  return { key, version: 2, dirs: {}, roots: {}, unifiedDir: null };
}

function counts(running: number, blocked = 0, sleeping = 3, truncated = false): TaskCounts {
  const total = running + blocked + sleeping;
  return { running, blocked, total, truncated };
}

describe('LoadavgSampler (fake timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('reuses the last count while the activity mark stands still, and counts again when it moves', () => {
    let mark = 'cpu-1|3';
    let counted = 0;
    let running = 2;
    const { sampler, container } = setUp({ activityMark: () => mark, countTasks: () => { counted++; return counts(running, 1); } });
    sampler.start();
    expect(sampler.get(container('c'))).toMatchObject({ load1: 3 * FIXED_1, running: 2, total: 6 });
    expect(counted).toBe(1);
    // Nothing moved: the same 3 active tasks are folded in, without a count.
    const kernel = { load1: 3 * FIXED_1 };
    for (let tick = 1; tick <= 3; tick++) {
      vi.advanceTimersByTime(INTERVAL_MS);
      kernel.load1 = calcLoad(kernel.load1, EXP_1, 3 * FIXED_1);
    }
    expect(counted).toBe(1);
    expect(sampler.stats().unchangedLastTick).toBe(1);
    expect(sampler.get(container('c'))).toMatchObject({ ...kernel, running: 2, total: 6 });
    // Something ran: counted again, and the new count is what is folded.
    mark = 'cpu-2|3';
    running = 0;
    vi.advanceTimersByTime(INTERVAL_MS);
    expect(counted).toBe(2);
    expect(sampler.stats().unchangedLastTick).toBe(0);
    expect(sampler.get(container('c'))).toMatchObject({ load1: calcLoad(kernel.load1, EXP_1, FIXED_1), running: 0 });
  });

  it("takes a count made moments ago (a /proc/stat render's) instead of counting, and counts when there is none", () => {
    let counted = 0;
    let marks = 0;
    let recent: TaskCounts | null = counts(2, 1);
    const { sampler, container } = setUp({
      recentCount: () => recent,
      activityMark: () => { marks++; return 'same'; },
      countTasks: () => { counted++; return counts(0); },
    });
    sampler.start();
    expect(sampler.get(container('c'))).toMatchObject({ load1: 3 * FIXED_1, running: 2, total: 6 });
    vi.advanceTimersByTime(INTERVAL_MS);
    expect({ counted, marks }).toEqual({ counted: 0, marks: 0 }); // neither a count nor a mark was read
    expect(sampler.get(container('c'))).toMatchObject({ load1: calcLoad(3 * FIXED_1, EXP_1, 3 * FIXED_1), running: 2 });
    recent = null; // nobody read its /proc/stat lately: the sampler counts
    vi.advanceTimersByTime(INTERVAL_MS);
    expect(counted).toBe(1);
    expect(sampler.get(container('c'))).toMatchObject({ running: 0, total: 3 });
  });

  it('counts every time when there is no mark, or the last count was truncated', () => {
    let counted = 0;
    const none = setUp({ activityMark: () => null, countTasks: () => { counted++; return counts(1); } });
    none.sampler.start();
    none.sampler.get(none.container('c'));
    vi.advanceTimersByTime(3 * INTERVAL_MS);
    expect(counted).toBe(4);
    none.sampler.stop();
    counted = 0;
    const cut = setUp({ activityMark: () => 'same', countTasks: () => { counted++; return counts(1, 0, 3, true); } });
    cut.sampler.start();
    cut.sampler.get(cut.container('c'));
    vi.advanceTimersByTime(3 * INTERVAL_MS);
    expect(counted).toBe(4);
    cut.sampler.stop();
  });

  it('climbs towards 2 along the kernel curve when two tasks become busy', () => {
    let running = 0;
    const { sampler, container } = setUp({ countTasks: () => counts(running) });
    sampler.start();
    expect(sampler.get(container('busy'))).toMatchObject({ load1: 0, load5: 0, load15: 0 });

    running = 2;
    const kernel = { load1: 0, load5: 0, load15: 0 };
    const load1ByTick: number[] = [];
    for (let tick = 1; tick <= 12; tick++) {
      vi.advanceTimersByTime(INTERVAL_MS);
      kernel.load1 = calcLoad(kernel.load1, EXP_1, 2 * FIXED_1);
      kernel.load5 = calcLoad(kernel.load5, EXP_5, 2 * FIXED_1);
      kernel.load15 = calcLoad(kernel.load15, EXP_15, 2 * FIXED_1);
      const sample = sampler.get(container('busy'))!;
      expect(sample).toMatchObject({ ...kernel, running: 2, total: 5 });
      load1ByTick[tick] = sample.load1;
    }
    // Half-way (1.00) is crossed at tick 9: 2 x (1 - (1884/2048)^n) >= 1 <=> n >= 8.3.
    expect(load1ByTick[8]).toBeLessThan(FIXED_1);
    expect(load1ByTick[9]).toBeGreaterThanOrEqual(FIXED_1);
    // One minute: 2 x (1 - (1884/2048)^12) = 1.265; the kernel's round-up while rising lands
    // just above it, so it prints 1.27. The 5- and 15-minute averages lag behind.
    const minute = sampler.get(container('busy'))!;
    expect(Math.abs(minute.load1 / FIXED_1 - 2 * (1 - (EXP_1 / FIXED_1) ** 12))).toBeLessThan(0.01);
    expect(formatLoad(minute.load1)).toBe('1.27');
    expect(minute.load5).toBeLessThan(minute.load1);
    expect(minute.load15).toBeLessThan(minute.load5);
    sampler.stop();
  });

  it('counts uninterruptible (D) threads in the load, like the kernel', () => {
    const { sampler, container } = setUp({ countTasks: () => counts(1, 2) });
    expect(sampler.get(container('io'))).toMatchObject({ load1: 3 * FIXED_1, running: 1 });
  });

  it('keeps an idle container at 0.00', () => {
    const countTasks = vi.fn(() => counts(0, 0, 40));
    const { sampler, container } = setUp({ countTasks });
    sampler.start();
    sampler.get(container('idle'));
    for (let minute = 0; minute < 5; minute++) {
      vi.advanceTimersByTime(60_000);
    }
    const sample = sampler.get(container('idle'))!;
    expect([sample.load1, sample.load5, sample.load15]).toEqual([0, 0, 0]);
    expect(sample.total).toBe(40);
    expect(countTasks).toHaveBeenCalledTimes(1 + 60);
    sampler.stop();
  });

  it('samples a container on its first read and seeds the averages with that count', () => {
    const countTasks = vi.fn(() => counts(3));
    const { sampler, container } = setUp({ countTasks });
    const sample = sampler.get(container('new'))!;
    expect(countTasks).toHaveBeenCalledTimes(1);
    expect([sample.load1, sample.load5, sample.load15].map(formatLoad)).toEqual(['3.00', '3.00', '3.00']);
    // A second read in the same period does not count again.
    sampler.get(container('new'));
    expect(countTasks).toHaveBeenCalledTimes(1);
  });

  it('stops counting a container once the registry dropped it, and counts it afresh when it is back', () => {
    const countTasks = vi.fn((_record: ContainerRecord) => counts(1));
    const { sampler, registry, container } = setUp({ countTasks });
    sampler.start();
    sampler.get(container('kept'));
    sampler.get(container('dropped'));
    for (let minute = 1; minute <= 10; minute++) {
      vi.advanceTimersByTime(60_000);
      sampler.get(container('kept'));
    }
    expect(registry.sweep(Date.now())).toBe(1);
    countTasks.mockClear();
    vi.advanceTimersByTime(60_000);
    expect(countTasks.mock.calls.map(([record]) => record.key)).toEqual(new Array(12).fill('kept'));
    expect(sampler.stats()).toMatchObject({ containers: 1 });
    const back = container('dropped');
    expect(back.load).toBeNull();
    expect(sampler.get(back)).not.toBeNull();
    expect(countTasks).toHaveBeenLastCalledWith(back);
    sampler.stop();
  });

  it('stops sampling a container whose loadavg is not read for 10 minutes, though its record lives on', () => {
    const countTasks = vi.fn((_record: ContainerRecord) => counts(2));
    const { sampler, registry, container } = setUp({ countTasks });
    sampler.start();
    sampler.get(container('other-files'));
    const attached = container('attached');
    registry.markAttached(locationOf('attached'));
    sampler.get(attached);
    for (let minute = 1; minute < 10; minute++) {
      vi.advanceTimersByTime(60_000);
      container('other-files'); // its other files are read: the record stays, its loadavg is not read
    }
    expect(sampler.stats()).toMatchObject({ containers: 2, unreadLastTick: 0 });
    vi.advanceTimersByTime(60_000);
    container('other-files');
    expect(registry.find('other-files')?.load).toBeNull();
    expect(registry.find('attached')?.load).toBeNull();
    expect(registry.size).toBe(2);
    expect(sampler.stats()).toMatchObject({ containers: 0 });
    countTasks.mockClear();
    vi.advanceTimersByTime(60_000);
    expect(countTasks).not.toHaveBeenCalled();
    // The next read starts afresh, as a first read does: sampled at once, seeded with its count.
    const sample = sampler.get(container('other-files'));
    expect(countTasks).toHaveBeenCalledTimes(1);
    expect(sample).toMatchObject({ load1: 2 * FIXED_1, load15: 2 * FIXED_1 });
    sampler.stop();
  });

  it('keeps sampling a container whose loadavg is read at least every 10 minutes', () => {
    const countTasks = vi.fn((_record: ContainerRecord) => counts(1));
    const { sampler, container } = setUp({ countTasks });
    sampler.start();
    sampler.get(container('watched'));
    for (let read = 0; read < 3; read++) {
      vi.advanceTimersByTime(9 * 60_000);
      sampler.get(container('watched'));
    }
    expect(countTasks).toHaveBeenCalledTimes(1 + 3 * 9 * 12);
    expect(sampler.stats()).toMatchObject({ containers: 1, unreadLastTick: 0 });
    sampler.stop();
  });

  it('leaves a container whose cgroup is gone to the registry, its numbers unchanged', () => {
    let gone = false;
    const { sampler, container } = setUp({ countTasks: () => (gone ? null : counts(2)) });
    sampler.start();
    const record = container('c');
    expect(sampler.get(record)).toMatchObject({ load1: 2 * FIXED_1 });
    gone = true;
    vi.advanceTimersByTime(INTERVAL_MS);
    expect(sampler.stats()).toMatchObject({ containers: 1, goneLastTick: 1, errorsLastTick: 0 });
    expect(record.load).toMatchObject({ load1: 2 * FIXED_1, sampledPeriod: 0 });
    // A first read of a container whose cgroup is gone has no figure: the host's line is served.
    expect(sampler.get(container('never-sampled'))).toBeNull();
    sampler.stop();
  });

  it('samples at most maxContainersPerTick per tick, round robin, folding in the missed periods', () => {
    let running = 0;
    const countTasks = vi.fn((_record: ContainerRecord) => counts(running));
    const { sampler, container } = setUp({ countTasks, maxContainersPerTick: 3 });
    sampler.start();
    const keys = Array.from({ length: 10 }, (_, i) => `c${i}`);
    for (const key of keys) sampler.get(container(key)); // seeded at 0 (period 0)
    running = 2;
    countTasks.mockClear();

    const sampledAt = new Map<string, number[]>(keys.map((k) => [k, []]));
    for (let tick = 1; tick <= 8; tick++) {
      vi.advanceTimersByTime(INTERVAL_MS);
      const calls = countTasks.mock.calls.map(([record]) => record.key);
      expect(calls).toHaveLength(3);
      for (const key of calls) sampledAt.get(key)!.push(tick);
      expect(sampler.stats()).toMatchObject({ sampledLastTick: 3, deferredLastTick: 7 });
      countTasks.mockClear();
    }
    // Oldest sample first (ties in the order first seen): ticks 1-4 cover c0-c2, c3-c5, c6-c8,
    // then c9 with c0, c1; and so on.
    expect(sampledAt.get('c0')).toEqual([1, 4, 7]);
    expect(sampledAt.get('c9')).toEqual([4, 8]);
    // No container waits more than ceil(10 / 3) = 4 ticks for its next sample.
    for (const key of keys) {
      const ticks = [0, ...sampledAt.get(key)!];
      for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBeLessThanOrEqual(4);
    }

    // c9: seeded at 0 in period 0, sampled at periods 4 and 8 -> catch-up steps of 4 and 4.
    const c9 = calcLoadN(calcLoadN(0, EXP_1, 2 * FIXED_1, 4), EXP_1, 2 * FIXED_1, 4);
    expect(sampler.get(container('c9'))!.load1).toBe(c9);
    // c0: periods 1, 4, 7 -> steps of 1, 3, 3.
    const c0 = calcLoadN(calcLoadN(calcLoad(0, EXP_1, 2 * FIXED_1), EXP_1, 2 * FIXED_1, 3), EXP_1, 2 * FIXED_1, 3);
    expect(sampler.get(container('c0'))!.load1).toBe(c0);
    sampler.stop();
  });

  it('catches up periods missed while the event loop was stalled', () => {
    let clockMs = 1_000_000;
    let running = 0;
    const { sampler, container } = setUp({ countTasks: () => counts(running), nowMs: () => clockMs });
    sampler.get(container('c'));
    running = 1;
    clockMs += 4 * INTERVAL_MS + 1000; // 4 periods pass before the next tick runs
    sampler.tick();
    expect(sampler.get(container('c'))!.load1).toBe(calcLoadN(0, EXP_1, FIXED_1, 4));
    // A tick in the same period folds nothing more.
    sampler.tick();
    expect(sampler.get(container('c'))!.load1).toBe(calcLoadN(0, EXP_1, FIXED_1, 4));
  });

  it('survives a failing count during a tick and reports it', () => {
    const onError = vi.fn();
    let failing = false;
    const { sampler, container } = setUp({
      countTasks: ({ key }) => {
        if (failing && key.startsWith('bad')) throw new Error('EIO');
        return counts(1);
      },
      onError,
    });
    sampler.start();
    sampler.get(container('bad'));
    sampler.get(container('good'));
    failing = true;
    expect(() => vi.advanceTimersByTime(INTERVAL_MS)).not.toThrow();
    expect(onError).toHaveBeenCalledWith('bad', expect.any(Error));
    expect(sampler.stats()).toMatchObject({ errorsLastTick: 1, sampledLastTick: 2, containers: 2 });
    // The first read propagates the failure to the request.
    expect(() => sampler.get(container('bad2'))).toThrow('EIO');
    sampler.stop();
  });

  it('counts truncated samples and reports tick duration in stats', () => {
    const { sampler, container } = setUp({ countTasks: () => counts(1, 0, 3, true) });
    sampler.start();
    sampler.get(container('huge'));
    vi.advanceTimersByTime(INTERVAL_MS);
    const stats = sampler.stats();
    expect(stats).toMatchObject({ ticks: 1, truncatedLastTick: 1, sampledLastTick: 1 });
    expect(stats.durationLastTickMs).toBeGreaterThanOrEqual(0);
    expect(sampler.durationLastTickMs).toBe(stats.durationLastTickMs);
    sampler.stop();
  });

  it('runs one interval timer between start() and stop()', () => {
    const { sampler } = setUp({ countTasks: () => counts(0) });
    sampler.start();
    sampler.start();
    expect(vi.getTimerCount()).toBe(1);
    sampler.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('LoadavgSampler (real timers)', () => {
  it('does not keep the process alive: its timer is unref-ed', () => {
    const { sampler } = setUp({ countTasks: () => counts(0) });
    sampler.start();
    const timer = (sampler as unknown as { timer: NodeJS.Timeout }).timer;
    expect(timer.hasRef()).toBe(false);
    sampler.stop();
  });

  it('rejects a zero interval, bound or unread time', () => {
    expect(() => setUp({ countTasks: () => null, intervalMs: 0 })).toThrow(RangeError);
    expect(() => setUp({ countTasks: () => null, maxContainersPerTick: 0 })).toThrow(RangeError);
    expect(() => setUp({ countTasks: () => null, stopAfterUnreadMs: 0 })).toThrow(RangeError);
  });
});

describe('LoadavgSampler slices', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('samples a tick in slices of maxContainersPerSlice, answering the event loop between them; a tick meanwhile adds nothing', () => {
    let clockMs = 0;
    const countTasks = vi.fn((_record: ContainerRecord) => counts(1));
    const onTick = vi.fn();
    const { sampler, container } = setUp({ countTasks, maxContainersPerSlice: 10, nowMs: () => clockMs, onTick });
    for (let i = 0; i < 25; i++) sampler.get(container(`c${i}`)); // seeded in period 0
    countTasks.mockClear();
    clockMs += INTERVAL_MS;

    sampler.tick();
    expect(countTasks).toHaveBeenCalledTimes(10); // the first slice, at once
    sampler.tick(); // the previous tick still runs: nothing more
    expect(countTasks).toHaveBeenCalledTimes(10);
    expect(onTick).not.toHaveBeenCalled();
    vi.advanceTimersByTime(0); // one turn of the event loop: the second slice
    expect(countTasks.mock.calls.length).toBeGreaterThan(10);
    vi.runAllTimers();
    expect(countTasks).toHaveBeenCalledTimes(25);
    expect(new Set(countTasks.mock.calls.map(([record]) => record.key)).size).toBe(25);
    expect(onTick).toHaveBeenCalledTimes(1);
    const stats = sampler.stats();
    expect(stats).toMatchObject({ sampledLastTick: 25, deferredLastTick: 0, ticks: 2 });
    expect(stats.longestSliceLastTickMs).toBeLessThanOrEqual(stats.durationLastTickMs);
    expect(sampler.get(container('c24'))!.load1).toBe(calcLoad(FIXED_1, EXP_1, FIXED_1));

    countTasks.mockClear();
    clockMs += INTERVAL_MS;
    sampler.tick(); // the next tick runs again
    vi.runAllTimers();
    expect(countTasks).toHaveBeenCalledTimes(25);
  });
});
