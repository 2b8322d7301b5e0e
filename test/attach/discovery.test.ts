/**
 * Event-driven discovery without root: CgroupWatch on a directory tree shaped like a cgroup
 * hierarchy (inotify behaves there as on cgroupfs for mkdir, rmdir and writes to cgroup.procs;
 * test/integration/attach.test.ts covers the real cgroupfs), the quick-look schedule with fake
 * timers, the Limiter, and the manager's event path and attachNow on a fake /proc with a fake
 * helper.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CgroupWatch } from '../../src/attach/cgroupWatch';
import { LookSchedule } from '../../src/attach/lookSchedule';
import { Limiter } from '../../src/attach/limiter';
import { mountStacks, parseMountinfo, stackHidden, topmostMounts } from '../../src/attach/mountinfo';
import { AttachManager, type AttachManagerOptions } from '../../src/attach/manager';
import pino from 'pino';
import { createLogger } from '../../src/log';
import { until } from '../helpers/procText';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-discovery-'));
});
afterEach(() => {
  vi.useRealTimers();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A watch on `root` for the prefixes, recording every activity and warning. */
function watchTree(root: string, prefixes: string[], maxWatched?: number): { watch: CgroupWatch; activity: string[]; warnings: string[] } {
  const activity: string[] = [];
  const warnings: string[] = [];
  const watch = new CgroupWatch({ hierarchyRoot: root, prefixes, onActivity: (key) => activity.push(key), warn: (key) => warnings.push(key), maxWatched });
  return { watch, activity, warnings };
}

describe('CgroupWatch', () => {
  it('reports a new cgroup under the prefix, nested ones made quickly too, and a process moved into one', async () => {
    fs.mkdirSync(path.join(dir, 'kubepods'));
    const { watch, activity } = watchTree(dir, ['/kubepods/']);
    watch.start();
    try {
      // A runtime makes the pod's and the container's directories in a row.
      fs.mkdirSync(path.join(dir, 'kubepods/pod1/c1'), { recursive: true });
      await until('new cgroups reported', () => [...activity], (a) => a.includes('/kubepods/pod1/c1'));
      expect(activity).toContain('/kubepods/pod1');
      expect(watch.watched).toBe(3);
      activity.length = 0;
      fs.writeFileSync(path.join(dir, 'kubepods/pod1/c1/cgroup.procs'), '4242\n');
      await until('process moved in', () => [...activity], (a) => a.includes('/kubepods/pod1/c1'));
      // Removed: no longer watched.
      fs.rmSync(path.join(dir, 'kubepods/pod1/c1'), { recursive: true });
      await until('unwatched', () => watch.watched, (n) => n === 2);
    } finally {
      watch.stop();
    }
  });

  it('matches keys as the scan does (string prefix), and never watches or reports a cgroup off the prefix\'s path', async () => {
    fs.mkdirSync(path.join(dir, 'system.slice'));
    const { watch, activity } = watchTree(dir, ['/kubepods']);
    watch.start();
    try {
      expect(watch.watched).toBe(1); // the root: "/kubepods" and "/kubepods.slice" would be made there
      fs.mkdirSync(path.join(dir, 'system.slice/cron.service'));
      fs.mkdirSync(path.join(dir, 'kubepods.slice/pod2'), { recursive: true });
      await until('kubepods.slice reported', () => [...activity], (a) => a.includes('/kubepods.slice/pod2'));
      fs.writeFileSync(path.join(dir, 'system.slice/cgroup.procs'), '1\n');
      fs.writeFileSync(path.join(dir, 'cgroup.procs'), '1\n'); // the root: on the way, not a match
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(activity.filter((k) => !k.startsWith('/kubepods'))).toEqual([]);
      expect(watch.watched).toBe(3); // root, /kubepods.slice, /kubepods.slice/pod2
    } finally {
      watch.stop();
    }
  });

  it('starts from the nearest existing ancestor when the prefix does not exist yet', async () => {
    const { watch, activity } = watchTree(dir, ['/a/b/']);
    watch.start();
    try {
      fs.mkdirSync(path.join(dir, 'a/b/c'), { recursive: true });
      await until('reported once made', () => [...activity], (a) => a.includes('/a/b/c'));
      expect(activity).not.toContain('/a');
    } finally {
      watch.stop();
    }
  });

  it('does not watch directories deeper than maxDepth below the prefix\'s parent (a container\'s own sub-cgroups)', async () => {
    fs.mkdirSync(path.join(dir, 'k'));
    const activity: string[] = [];
    const watch = new CgroupWatch({ hierarchyRoot: dir, prefixes: ['/k/'], onActivity: (key) => activity.push(key), warn: () => undefined, maxDepth: 2 });
    watch.start();
    try {
      fs.mkdirSync(path.join(dir, 'k/pod/c1/inner/deeper'), { recursive: true });
      await until('container reported', () => [...activity], (a) => a.includes('/k/pod/c1'));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(watch.watched).toBe(3); // /k, /k/pod, /k/pod/c1
      expect(activity).not.toContain('/k/pod/c1/inner');
    } finally {
      watch.stop();
    }
  });

  it('watches at most maxWatched directories and says so', async () => {
    fs.mkdirSync(path.join(dir, 'k'));
    const { watch, warnings } = watchTree(dir, ['/k/'], 2);
    watch.start();
    try {
      for (const name of ['x', 'y', 'z']) fs.mkdirSync(path.join(dir, 'k', name));
      await until('limit warned', () => [...warnings], (w) => w.includes('watch-limit'));
      expect(watch.watched).toBe(2);
    } finally {
      watch.stop();
    }
  });
});

describe('a file bound in a /proc that was mounted over since (unshare --mount-proc after an early attach)', () => {
  // 601: the /proc the namespace started with; 700: our bind in it; 710: a fresh /proc over it;
  // 720: our bind again, in the fresh one.
  const before = [
    '600 580 0:52 / / rw,relatime - ext4 /dev/vda rw',
    '601 600 0:5 / /proc rw,relatime - proc proc rw',
    '700 601 0:91 /containers/x/proc/meminfo /proc/meminfo rw,relatime - fuse.isolfs isolfs:/mnt rw',
    '710 601 0:77 / /proc rw,relatime - proc proc rw',
  ];
  it('is hidden, and a bind made in the fresh /proc is the visible one whatever the line order', () => {
    const hidden = mountStacks(parseMountinfo(before.join('\n')));
    expect(stackHidden(hidden.get('/proc/meminfo') ?? [], hidden)).toBe(true);
    const after = [...before, '720 710 0:91 /containers/x/proc/meminfo /proc/meminfo rw,relatime - fuse.isolfs isolfs:/mnt rw'];
    for (const lines of [after, [...after].reverse()]) {
      const stacks = mountStacks(parseMountinfo(lines.join('\n')));
      expect(topmostMounts(parseMountinfo(lines.join('\n'))).get('/proc/meminfo')?.id).toBe(720);
      expect(stackHidden(stacks.get('/proc/meminfo') ?? [], stacks)).toBe(false);
    }
  });
});

describe('a file bound beneath a directory that was mounted over since (a CPU directory bound over sysfs)', () => {
  const lines = [
    '600 580 0:52 / / rw,relatime - ext4 /dev/vda rw',
    '602 600 0:20 / /sys rw,relatime - sysfs sysfs rw',
    '700 602 0:91 /containers/x/sys/devices/system/cpu/online /sys/devices/system/cpu/online rw,relatime - fuse.isolfs isolfs:/mnt rw',
    '710 602 0:90 /containers/x/sys/devices/system/cpu /sys/devices/system/cpu rw,relatime - fuse.isolfs isolfs:/mnt rw',
  ];
  it('is hidden; the copy bound again inside the directory is the visible one', () => {
    const stacks = mountStacks(parseMountinfo(lines.join('\n')));
    expect(stackHidden(stacks.get('/sys/devices/system/cpu/online') ?? [], stacks)).toBe(true);
    const again = [...lines, '720 710 0:91 /containers/x/sys/devices/system/cpu/online /sys/devices/system/cpu/online rw,relatime - fuse.isolfs isolfs:/mnt rw'];
    const after = mountStacks(parseMountinfo(again.join('\n')));
    expect(after.get('/sys/devices/system/cpu/online')?.[0]?.id).toBe(720);
    expect(stackHidden(after.get('/sys/devices/system/cpu/online') ?? [], after)).toBe(false);
  });
});

describe('LookSchedule', () => {
  it('looks at a cgroup at each delay, then stops; a new event starts the dense looks over', async () => {
    vi.useFakeTimers();
    const looks: number[] = [];
    const schedule = new LookSchedule({ look: () => Promise.resolve(looks.push(Date.now()) < 0), delaysMs: [0, 10, 30] });
    const t0 = Date.now();
    schedule.start('/k/c1');
    await vi.advanceTimersByTimeAsync(100);
    expect(looks.map((t) => t - t0)).toEqual([0, 10, 30]);
    expect(schedule.size).toBe(0);
    looks.length = 0;
    schedule.start('/k/c1');
    await vi.advanceTimersByTimeAsync(15); // looked at 0 and 10; next at 30
    schedule.start('/k/c1'); // an event: from the first delay again
    await vi.advanceTimersByTimeAsync(100);
    expect(looks.map((t) => t - t0 - 100)).toEqual([0, 10, 15, 25, 45]);
    schedule.stop();
  });

  it('ends a series early when a look says the cgroup is settled', async () => {
    vi.useFakeTimers();
    let looks = 0;
    const schedule = new LookSchedule({ look: () => Promise.resolve(++looks === 2), delaysMs: [0, 10, 20, 30] });
    schedule.start('/k/c1');
    await vi.advanceTimersByTimeAsync(100);
    expect(looks).toBe(2);
    expect(schedule.size).toBe(0);
  });

  it('has at most maxActive cgroups under way; the rest are left to the scan, reported', () => {
    vi.useFakeTimers();
    const overflow: string[] = [];
    const schedule = new LookSchedule({ look: () => Promise.resolve(false), delaysMs: [0, 1000], maxActive: 2, overflow: (key) => overflow.push(key) });
    for (const key of ['/a', '/b', '/c']) schedule.start(key);
    expect(schedule.size).toBe(2);
    expect(overflow).toEqual(['/c']);
    schedule.stop();
  });
});

describe('Limiter', () => {
  it('runs at most `limit` tasks at once, the others in order as places free up', async () => {
    const limiter = new Limiter(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const task = (i: number) => async (): Promise<void> => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      order.push(i);
      running--;
    };
    await Promise.all([0, 1, 2, 3, 4].map((i) => limiter.run(task(i))));
    expect(most).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(limiter.active).toBe(0);
    expect(() => new Limiter(0)).toThrow(RangeError);
  });
});

const MNT = '/var/lib/isolfs/mnt';
const VIEWS = '/run/isolfs/views-x';
const PID = 4242;
const KEY = '/kubepods/pod1/c1';

/** Our /proc/self (live mounts of both trees) and nothing else yet. */
function fakeProcRoot(): string {
  const procRoot = path.join(dir, 'proc');
  fs.mkdirSync(path.join(procRoot, 'self', 'ns'), { recursive: true });
  fs.writeFileSync(path.join(procRoot, 'self', 'ns', 'mnt'), 'ours');
  fs.writeFileSync(path.join(procRoot, 'self', 'mountinfo'), [
    `50 1 0:90 / ${MNT} rw,relatime - fuse.isolfs isolfs:${MNT} rw,user_id=0,group_id=0`,
    `51 1 0:91 / ${VIEWS} rw,relatime - fuse.isolfs isolfs:${MNT} rw,user_id=0,group_id=0`,
    '',
  ].join('\n'));
  return procRoot;
}

/**
 * A container process: cgroup `key`, /proc/meminfo to attach over, and its own mount namespace
 * (a namespace is the ns/mnt file's inode: `ours` links ours).
 */
function addProcess(procRoot: string, pid: number, key: string, ours = false): void {
  const proc = path.join(procRoot, String(pid));
  fs.mkdirSync(path.join(proc, 'ns'), { recursive: true });
  if (ours) fs.linkSync(path.join(procRoot, 'self', 'ns', 'mnt'), path.join(proc, 'ns', 'mnt'));
  else fs.writeFileSync(path.join(proc, 'ns', 'mnt'), '');
  fs.writeFileSync(path.join(proc, 'mountinfo'), '600 580 0:52 / / rw,relatime - overlay overlay rw\n601 600 0:55 / /proc rw,relatime - proc proc rw\n');
  fs.writeFileSync(path.join(proc, 'cgroup'), `0::${key}\n`);
  fs.mkdirSync(path.join(proc, 'root', 'proc'), { recursive: true });
  fs.writeFileSync(path.join(proc, 'root', 'proc', 'meminfo'), '');
}

/** What isolfs-attach --batch prints: "ns PID" per @PID argument, then "ok DST" per pair (@PID_SEEN@ runs per namespace). */
const BATCH_ANSWERS = `while [ "$1" != "--" ]; do shift; done; shift
for pair in "$@"; do
  case "$pair" in @*) @PID_SEEN@; echo "ns \${pair#@}"; continue;; esac
  rest=\${pair%:*}; echo "ok \${rest##*:} detached=0"
done`;

/** A stand-in for isolfs-attach --batch that answers ok for every pair and logs each namespace's pid. */
function fakeHelper(): { path: string; pids: () => string[] } {
  const helper = path.join(dir, 'isolfs-attach');
  const log = `${helper}.log`;
  fs.writeFileSync(helper, `#!/bin/sh
${BATCH_ANSWERS.replace('@PID_SEEN@', `echo "\${pair#@}" >> '${log}'`)}
`, { mode: 0o755 });
  return { path: helper, pids: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : []) };
}

function makeManager(procRoot: string, cgroupRoot: string, helperPath: string, overrides: Partial<AttachManagerOptions> = {}): AttachManager {
  return new AttachManager({
    mountpoint: MNT, viewsMountpoint: VIEWS, procRoot,
    hierarchy: { cgroupRoot, v1: new Map(), unifiedRoot: cgroupRoot, unifiedControllers: new Set(['memory']) },
    helperPath, prefixes: ['/kubepods'], intervalMs: 600_000, hostIsolated: () => true,
    tree: { addContainer: () => true }, containers: { markAttached: () => undefined },
    logger: createLogger('silent'), statfs: () => Promise.resolve({}),
    ...overrides,
  });
}

describe('AttachManager: event-driven discovery and attachNow', () => {
  it('attaches a container whose process appears after the start-up scan, without waiting for the next scan', async () => {
    const procRoot = fakeProcRoot();
    const cgroupRoot = path.join(dir, 'cgroup');
    fs.mkdirSync(path.join(cgroupRoot, 'kubepods'), { recursive: true });
    const helper = fakeHelper();
    const manager = makeManager(procRoot, cgroupRoot, helper.path, { lookDelaysMs: [0, 10, 20, 50] });
    manager.start();
    try {
      expect((await manager.scan()).namespaces).toBe(0);
      expect(manager.watchedCgroups).toBeGreaterThan(0);
      // The runtime makes the cgroup, its init joins it (host namespace still), then unshares.
      const cg = path.join(cgroupRoot, KEY);
      fs.mkdirSync(cg, { recursive: true });
      addProcess(procRoot, PID, KEY, true);
      fs.writeFileSync(path.join(cg, 'cgroup.procs'), `${PID}\n`);
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect(helper.pids()).toEqual([]); // in our own namespace: nothing to attach yet
      fs.rmSync(path.join(procRoot, String(PID), 'ns', 'mnt'));
      fs.writeFileSync(path.join(procRoot, String(PID), 'ns', 'mnt'), ''); // unshared: a namespace of its own
      fs.writeFileSync(path.join(cg, 'cgroup.procs'), `${PID}\n`); // e.g. its child moved in
      const started = performance.now();
      await until('attached by the event path', () => helper.pids(), (p) => p.includes(String(PID)));
      console.log(`event path: helper ran ${(performance.now() - started).toFixed(1)} ms after the event`);
    } finally {
      manager.stop();
    }
  });

  it('a process joining a container already attached (an exec) costs one look, not a series', async () => {
    const procRoot = fakeProcRoot();
    const cgroupRoot = path.join(dir, 'cgroup');
    const cg = path.join(cgroupRoot, KEY);
    fs.mkdirSync(cg, { recursive: true });
    addProcess(procRoot, PID, KEY);
    fs.writeFileSync(path.join(cg, 'cgroup.procs'), `${PID}\n`);
    const helper = fakeHelper();
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const manager = makeManager(procRoot, cgroupRoot, helper.path, { lookDelaysMs: [0, 50, 100, 150, 200], logger });
    const looks = (): number => lines.filter((l) => l.includes('"attach look"')).length;
    manager.start();
    try {
      await manager.scan();
      expect(helper.pids()).toEqual([String(PID)]);
      // The fake helper binds nothing: the namespace's mountinfo now shows our copy, as after a real attach.
      fs.appendFileSync(path.join(procRoot, String(PID), 'mountinfo'),
        `700 601 0:91 /containers/${encodeURIComponent(KEY)}/proc/meminfo /proc/meminfo rw,relatime - fuse.isolfs isolfs:${MNT} rw\n`);
      expect((await manager.scan()).inspected).toBe(1); // the look after an attach: nothing to do
      const before = looks();
      fs.writeFileSync(path.join(cg, 'cgroup.procs'), `${PID}\n`); // an exec joins the container
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(looks() - before).toBe(1);
      expect(helper.pids()).toEqual([String(PID)]);
      // A new namespace in the cgroup (a second container process that unshared): a series again.
      addProcess(procRoot, PID + 1, KEY);
      fs.writeFileSync(path.join(cg, 'cgroup.procs'), `${PID}\n${PID + 1}\n`);
      await until('attached the new namespace', () => helper.pids(), (p) => p.includes(String(PID + 1)));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(looks() - before).toBeGreaterThan(2);
    } finally {
      manager.stop();
    }
  });

  it('attachNow attaches the namespace of a pid under a prefix and says what it did; others are skipped with the reason', async () => {
    const procRoot = fakeProcRoot();
    addProcess(procRoot, PID, KEY);
    addProcess(procRoot, 4343, '/system.slice/cron.service');
    addProcess(procRoot, 4444, KEY, true);
    const helper = fakeHelper();
    const manager = makeManager(procRoot, path.join(dir, 'cgroup'), helper.path, { watch: false });
    expect(await manager.attachNow(PID)).toEqual({ outcome: 'attached', container: KEY, attached: ['/proc/meminfo'], failed: [] });
    expect(helper.pids()).toEqual([String(PID)]);
    expect(await manager.attachNow(4343)).toEqual({ outcome: 'skipped', reason: 'not-under-prefix', container: '/system.slice/cron.service' });
    expect(await manager.attachNow(4444)).toEqual({ outcome: 'skipped', reason: 'own-namespace', container: KEY });
    expect(await manager.attachNow(99_999)).toEqual({ outcome: 'skipped', reason: 'process-gone', container: null });
    const off = makeManager(procRoot, path.join(dir, 'cgroup'), helper.path, { watch: false, hostIsolated: () => false });
    expect(await off.attachNow(PID)).toEqual({ outcome: 'skipped', reason: 'not-attaching', container: KEY });
    expect(helper.pids()).toEqual([String(PID)]);
    manager.stop();
  });

  it('runs at most maxConcurrentAttaches helpers at once in a scan, and every namespace in that one scan', async () => {
    const procRoot = fakeProcRoot();
    for (let i = 0; i < 12; i++) addProcess(procRoot, 5000 + i, `/kubepods/pod${i}`);
    // A helper that records how many run at once (a lock-free counter in files).
    const helper = path.join(dir, 'slow-attach');
    const runningDir = path.join(dir, 'running');
    fs.mkdirSync(runningDir);
    fs.writeFileSync(helper, `#!/bin/sh
touch '${runningDir}'/$$; ls '${runningDir}' | wc -l >> '${dir}/concurrency'; sleep 0.1; rm '${runningDir}'/$$
${BATCH_ANSWERS.replace('@PID_SEEN@', ':')}
`, { mode: 0o755 });
    const manager = makeManager(procRoot, path.join(dir, 'cgroup'), helper, { watch: false, maxConcurrentAttaches: 3 });
    const report = await manager.scan();
    expect(report).toMatchObject({ namespaces: 12, inspected: 12, attachedContainers: 12, failures: 0 });
    const seen = fs.readFileSync(path.join(dir, 'concurrency'), 'utf8').trim().split('\n').map(Number);
    // Namespaces ready together share a batched run (attachBatch.ts): never more than 3 runs at once.
    expect(Math.max(...seen)).toBeLessThanOrEqual(3);
  });
});

describe('CgroupWatch: cgroups below an attached container', () => {
  it('are not watched, and ones watched before it was attached are let go when the budget runs out', async () => {
    fs.mkdirSync(path.join(dir, 'kubepods/pod1/ctr'), { recursive: true });
    const attached = new Set<string>();
    const covered = (key: string): boolean => [...attached].some((a) => key.startsWith(`${a}/`));
    const activity: string[] = [];
    const warnings: string[] = [];
    const watch = new CgroupWatch({ hierarchyRoot: dir, prefixes: ['/kubepods/'], onActivity: (key) => activity.push(key), warn: (key) => warnings.push(key), covered, maxWatched: 10 });
    watch.start();
    try {
      expect(watch.watched).toBe(3); // /kubepods, pod1, ctr
      // Before ctr is attached, its children are watched (7 of them fill the budget of 10).
      for (let i = 0; i < 7; i++) fs.mkdirSync(path.join(dir, `kubepods/pod1/ctr/early${i}`));
      await until('early children watched', () => watch.watched, (n) => n === 10);
      attached.add('/kubepods/pod1/ctr');
      // Made after: not watched, however many.
      for (let i = 0; i < 20; i++) fs.mkdirSync(path.join(dir, `kubepods/pod1/ctr/late${i}`));
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Another pod's container: the early children are let go to make room for it.
      fs.mkdirSync(path.join(dir, 'kubepods/pod2/ctr'), { recursive: true });
      await until('the other pod\'s container reported', () => [...activity], (a) => a.includes('/kubepods/pod2/ctr'));
      expect(watch.watched).toBe(5); // /kubepods, pod1, ctr, pod2, pod2/ctr
      expect(activity.filter((k) => k.includes('late'))).toEqual([]);
      expect(warnings).toEqual([]);
    } finally {
      watch.stop();
    }
  });
});
