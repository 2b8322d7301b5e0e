/**
 * The attach manager without root: reading mountinfo, and its decisions (the plan, which mounts
 * it names for detaching, what apply and a scan do) on a fake /proc (fixture mountinfo text,
 * files standing in for namespaces and targets), a fake tree, registry and helper script.
 * Everything here runs as any user; the real helper in real namespaces is test/attach/attach.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AttachManager, type AttachManagerOptions } from '../../src/attach/manager';
import { escapeMountinfo, mountinfoLinesAt, parseMountinfo, topmostMounts } from '../../src/attach/mountinfo';
import type { OurDevices, PlanRequest } from '../../src/attach/plan';
import { mountStacks } from '../../src/attach/mountinfo';
import type { CgroupHierarchy } from '../../src/cgroup/hierarchy';
import type { CgroupLocation } from '../../src/cgroup/snapshot';
import { containerDirName } from '../../src/fuse/filesystem';
import { createLogger } from '../../src/log';

// Shaped like a runc container's mountinfo after a hostPath bind at creation (id 610), a dead
// mount of a previous daemon under a live attach on /proc/vmstat (612 on 611), and a path with
// a space (escaped as \040 by the kernel).
const MOUNTINFO = [
  '600 580 0:52 / / ro,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w',
  '601 600 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw',
  '610 601 0:41 /proc/meminfo /proc/meminfo ro,nosuid,nodev,relatime - fuse.isolfs isolfs:/var/lib/isolfs/mnt rw,user_id=0,group_id=0,allow_other',
  '611 601 0:41 /containers/%2Fkubepods%2Fpod1/proc/vmstat /proc/vmstat rw,relatime - fuse.isolfs isolfs:/var/lib/isolfs/mnt rw,user_id=0,group_id=0',
  '612 611 0:77 /containers/%2Fkubepods%2Fpod1/proc/vmstat /proc/vmstat rw,relatime - fuse.isolfs isolfs:/var/lib/isolfs/mnt rw,user_id=0,group_id=0',
  '620 600 0:60 / /data\\040dir rw,relatime shared:5 - tmpfs tmpfs rw',
  '',
].join('\n');

describe('parseMountinfo', () => {
  it('reads ids, device, root, mountpoint, fstype and source, unescaping paths', () => {
    const mounts = parseMountinfo(MOUNTINFO);
    expect(mounts).toHaveLength(6);
    expect(mounts[2]).toEqual({
      id: 610, parentId: 601, device: '0:41', root: '/proc/meminfo', mountpoint: '/proc/meminfo',
      fstype: 'fuse.isolfs', source: 'isolfs:/var/lib/isolfs/mnt',
    });
    // Optional fields (shared:5) before the separator do not shift anything.
    expect(mounts[5]).toMatchObject({ mountpoint: '/data dir', fstype: 'tmpfs', source: 'tmpfs' });
  });

  it('skips lines without the separator instead of failing', () => {
    expect(parseMountinfo('garbage\n1 2 3\n')).toEqual([]);
  });
});

describe('mountinfoLinesAt', () => {
  it('keeps the lines of one mountpoint, escaped as mountinfo prints it, and parses to the same mounts there', () => {
    const kept = mountinfoLinesAt(MOUNTINFO, '/data dir');
    expect(parseMountinfo(kept)).toEqual(parseMountinfo(MOUNTINFO).filter((m) => m.mountpoint === '/data dir'));
    expect(parseMountinfo(mountinfoLinesAt(MOUNTINFO, '/proc/meminfo')).map((m) => m.id)).toEqual(
      parseMountinfo(MOUNTINFO).filter((m) => m.mountpoint === '/proc/meminfo').map((m) => m.id));
    expect(mountinfoLinesAt(MOUNTINFO, '/data')).toBe('');
    expect(escapeMountinfo('/a b\\c\td')).toBe('/a\\040b\\134c\\011d');
  });
});

describe('topmostMounts', () => {
  it('picks the mount nothing else on the same path sits on, whatever the line order', () => {
    const mounts = parseMountinfo(MOUNTINFO);
    const reversed = [...mounts].reverse();
    for (const list of [mounts, reversed]) {
      const top = topmostMounts(list);
      expect(top.get('/proc/vmstat')?.id).toBe(612);
      expect(top.get('/proc/meminfo')?.id).toBe(610);
      expect(top.get('/proc')?.id).toBe(601);
    }
  });
});

describe('mountStacks', () => {
  it('lists the mounts stacked on each path, topmost first, without the mount they sit on', () => {
    const stacks = mountStacks(parseMountinfo(MOUNTINFO));
    expect(stacks.get('/proc/vmstat')?.map((m) => m.id)).toEqual([612, 611]);
    expect(stacks.get('/proc/meminfo')?.map((m) => m.id)).toEqual([610]);
    expect(stacks.get('/proc')?.map((m) => m.id)).toEqual([601]);
  });
});

const MNT = '/var/lib/isolfs/mnt';
/** Where the container-views tree is mounted: a second connection, with the main mount's source name. */
const VIEWS = '/run/isolfs/views-x';
const OUR_SOURCE = `isolfs:${MNT}`;
/** Our live main tree: the shared files and each container's control files. */
const MAIN_DEVICE = '0:90';
/** Our live container-views tree: each container's views. */
const VIEWS_DEVICE = '0:91';
const OUR_DEVICES: OurDevices = { main: MAIN_DEVICE, 'container-views': VIEWS_DEVICE };
/** A previous daemon of this mountpoint, killed: its connection answers ENOTCONN. */
const DEAD_DEVICE = '0:41';
/** That previous daemon's container-views tree (same source name), dead with it. */
const DEAD_VIEWS_DEVICE = '0:40';
/** A previous daemon of this mountpoint that still answers (hung on its way out). */
const LIVE_PREDECESSOR_DEVICE = '0:42';
/** Another isolfs instance, for another mountpoint. */
const OTHER_INSTANCE_DEVICE = '0:43';
const PID = 4242;
const KEY = '/kubepods/pod1/c1';
const OWN = `/containers/${containerDirName(KEY)}`;
const OTHER_KEY_COPY = `/containers/${containerDirName('/kubepods/pod2/c2')}`;

const LOCATION: CgroupLocation = { key: KEY, version: 2, dirs: {}, roots: {}, unifiedDir: `/sys/fs/cgroup${KEY}` };
const HIERARCHY: CgroupHierarchy = { cgroupRoot: '/sys/fs/cgroup', v1: new Map(), unifiedRoot: '/sys/fs/cgroup', unifiedControllers: new Set(['memory']) };

/** Where a FUSE file mount comes from (`root` of the device, mount `source`) and where it sits. */
interface MountPlace {
  root: string;
  target: string;
  source?: string;
}

/** A mountinfo line of an isolfs file mount (id `id`, parent `parent`). */
function line(id: number, parent: number, device: string, { root, target, source = OUR_SOURCE }: MountPlace): string {
  return `${id} ${parent} ${device} ${root} ${target} rw,relatime - fuse.isolfs ${source} rw,user_id=0,group_id=0`;
}

const BASE = [
  '600 580 0:52 / / rw,relatime - overlay overlay rw',
  '601 600 0:55 / /proc rw,relatime - proc proc rw',
];

/** Our own live mounts as our mountinfo shows them: the main tree and the container-views tree. */
const OUR_MOUNTS = [
  line(50, 1, MAIN_DEVICE, { root: '/', target: MNT }),
  line(51, 1, VIEWS_DEVICE, { root: '/', target: VIEWS }),
];

/**
 * A fake /proc: ours (self) with our live mounts, and one container process (PID) with the given
 * mountinfo, cgroup KEY and, under root/, the files that exist in the container.
 */
function fakeProc(dir: string, mountinfo: string[], files: string[] = ['/proc/meminfo', '/proc/vmstat', '/proc/stat'], ourMounts: string[] = OUR_MOUNTS): string {
  const procRoot = path.join(dir, 'proc');
  fs.mkdirSync(path.join(procRoot, 'self', 'ns'), { recursive: true });
  fs.writeFileSync(path.join(procRoot, 'self', 'ns', 'mnt'), 'ours');
  fs.writeFileSync(path.join(procRoot, 'self', 'mountinfo'), [...ourMounts, ''].join('\n'));
  const proc = path.join(procRoot, String(PID));
  fs.mkdirSync(path.join(proc, 'ns'), { recursive: true });
  fs.writeFileSync(path.join(proc, 'ns', 'mnt'), 'container');
  fs.writeFileSync(path.join(proc, 'mountinfo'), [...BASE, ...mountinfo, ''].join('\n'));
  fs.writeFileSync(path.join(proc, 'cgroup'), `0::${KEY}\n`);
  for (const file of files) {
    fs.mkdirSync(path.join(proc, 'root', path.dirname(file)), { recursive: true });
    fs.writeFileSync(path.join(proc, 'root', file), '');
  }
  return procRoot;
}

/** statfs as the kernel would answer through each device's mounts (the probe ends in the target). */
function fakeStatfs(deadTargets: readonly string[]): (probe: string) => Promise<unknown> {
  return (probe) => {
    if (deadTargets.some((t) => probe.endsWith(`/root${t}`))) return Promise.reject(Object.assign(new Error('dead'), { code: 'ENOTCONN' }));
    return Promise.resolve({});
  };
}

/** A statfs whose every call is recorded (the target's path), answering as `answer` says. */
function recordingStatfs(answer: (target: string) => Promise<unknown>): { statfs: (probe: string) => Promise<unknown>; probed: string[] } {
  const probed: string[] = [];
  const statfs = (probe: string): Promise<unknown> => {
    const target = probe.slice(probe.indexOf('/root/') + '/root'.length);
    probed.push(target);
    return answer(target);
  };
  return { statfs, probed };
}

/** How the manager starts the helper (attachBatch.ts), before the first namespace. */
const BATCH_ARGS = ['--batch', '--ns-timeout-ms', '2000', '--'];

function enotconn(): Promise<never> {
  return Promise.reject(Object.assign(new Error('dead'), { code: 'ENOTCONN' }));
}

/** A stand-in for isolfs-attach --batch: logs its arguments, answers "ns PID" and "ok DST detached=<ids named>". */
function fakeHelper(dir: string, body?: string): { path: string; calls: () => string[][] } {
  const helper = path.join(dir, 'isolfs-attach');
  const log = `${helper}.log`;
  fs.writeFileSync(helper, `#!/bin/sh
printf '%s\\n' "$*" >> '${log}'
${body ?? `while [ "$1" != "--" ]; do shift; done; shift
for pair in "$@"; do
  case "$pair" in @*) echo "ns \${pair#@}"; continue;; esac
  ids=\${pair##*:}; rest=\${pair%:*}; dst=\${rest##*:}
  n=0; [ -n "$ids" ] && n=$(printf '%s\\n' "$ids" | tr ',' '\\n' | wc -l)
  echo "ok $dst detached=$n"
done`}
`, { mode: 0o755 });
  return { path: helper, calls: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ')) : []) };
}

interface Fakes {
  events: string[];
  manager: AttachManager;
}

function makeManager(procRoot: string, overrides: Partial<AttachManagerOptions> & { deadTargets?: string[]; refuseKeys?: boolean } = {}): Fakes {
  const events: string[] = [];
  const manager = new AttachManager({
    mountpoint: MNT,
    viewsMountpoint: VIEWS,
    procRoot,
    hierarchy: HIERARCHY,
    helperPath: '/nonexistent/isolfs-attach',
    prefixes: ['/kubepods'],
    intervalMs: 60_000,
    hostIsolated: () => true,
    tree: { addContainer: (key) => { events.push(`addContainer ${key}`); return !overrides.refuseKeys; } },
    containers: { markAttached: (location) => events.push(`markAttached ${location.key}`) },
    logger: createLogger('silent'),
    statfs: fakeStatfs(overrides.deadTargets ?? []),
    ...overrides,
  });
  return { events, manager };
}

describe('AttachManager.plan: which mounts it names for detaching', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-plan-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const repairOnly: PlanRequest = { pid: PID, location: LOCATION, attach: false, ourDevices: OUR_DEVICES };
  const attaching: PlanRequest = { ...repairOnly, attach: true };

  it('names a dead predecessor\'s mount and rebinds the same file from our mount (repair)', async () => {
    const procRoot = fakeProc(dir, [line(610, 601, DEAD_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo' })]);
    const { manager } = makeManager(procRoot, { deadTargets: ['/proc/meminfo'] });
    const plan = await manager.plan(repairOnly);
    expect(plan).toEqual({
      pid: PID, container: null, repairTargets: new Set(['/proc/meminfo']),
      pairs: [{ source: `${MNT}/proc/meminfo`, target: '/proc/meminfo', detachMountIds: [610] }],
    });
  });

  it('repairs a dead copy of the namespace\'s own container from that container\'s subtree, another\'s from the shared file', async () => {
    const procRoot = fakeProc(dir, [
      line(611, 601, DEAD_DEVICE, { root: `${OWN}/proc/vmstat`, target: '/proc/vmstat' }),
      line(612, 601, DEAD_DEVICE, { root: `${OTHER_KEY_COPY}/proc/stat`, target: '/proc/stat' }),
    ]);
    const { manager } = makeManager(procRoot, { deadTargets: ['/proc/vmstat', '/proc/stat'] });
    const plan = await manager.plan(repairOnly);
    expect(plan.container).toEqual(LOCATION);
    expect(plan.pairs).toEqual([
      { source: `${VIEWS}${OWN}/proc/vmstat`, target: '/proc/vmstat', detachMountIds: [611] },
      { source: `${MNT}/proc/stat`, target: '/proc/stat', detachMountIds: [612] },
    ]);
  });

  it('leaves a live predecessor\'s mount alone: no repair, and an attach goes on top without detaching it', async () => {
    const procRoot = fakeProc(dir, [line(610, 601, LIVE_PREDECESSOR_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo' })]);
    const { manager } = makeManager(procRoot);
    expect((await manager.plan(repairOnly)).pairs).toEqual([]);
    const plan = await manager.plan(attaching);
    expect(plan.repairTargets.size).toBe(0);
    expect(plan.pairs.find((p) => p.target === '/proc/meminfo')).toEqual({ source: `${VIEWS}${OWN}/proc/meminfo`, target: '/proc/meminfo', detachMountIds: [] });
  });

  it('never repairs another instance\'s mount; an attach names it only when its connection is dead', async () => {
    const other = 'isolfs:/srv/other/mnt';
    const procRoot = fakeProc(dir, [
      line(610, 601, OTHER_INSTANCE_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo', source: other }),
      line(611, 601, '0:44', { root: '/proc/vmstat', target: '/proc/vmstat', source: other }),
    ]);
    const { manager } = makeManager(procRoot, { deadTargets: ['/proc/vmstat'] });
    expect((await manager.plan(repairOnly)).pairs).toEqual([]);
    const plan = await manager.plan(attaching);
    expect(plan.repairTargets.size).toBe(0);
    // The live one stays beneath ours; the dead one (ENOTCONN to every reader) is replaced.
    expect(plan.pairs.filter((p) => p.detachMountIds.length > 0)).toEqual([
      { source: `${VIEWS}${OWN}/proc/vmstat`, target: '/proc/vmstat', detachMountIds: [611] },
    ]);
  });

  it('names our own stale copy (another container\'s, or the shared file) and keeps the right one', async () => {
    const procRoot = fakeProc(dir, [
      line(610, 601, VIEWS_DEVICE, { root: `${OTHER_KEY_COPY}/proc/meminfo`, target: '/proc/meminfo' }),
      line(611, 601, MAIN_DEVICE, { root: '/proc/vmstat', target: '/proc/vmstat' }),
      line(612, 601, VIEWS_DEVICE, { root: `${OWN}/proc/stat`, target: '/proc/stat' }),
    ]);
    const { manager } = makeManager(procRoot);
    const plan = await manager.plan(attaching);
    expect(plan.container).toEqual(LOCATION);
    expect(plan.repairTargets.size).toBe(0);
    expect(plan.pairs).toEqual([
      { source: `${VIEWS}${OWN}/proc/meminfo`, target: '/proc/meminfo', detachMountIds: [610] },
      { source: `${VIEWS}${OWN}/proc/vmstat`, target: '/proc/vmstat', detachMountIds: [611] },
    ]);
  });

  it('names nothing where nothing is mounted, and skips a target the container does not have', async () => {
    const procRoot = fakeProc(dir, [], ['/proc/meminfo']);
    const { manager } = makeManager(procRoot);
    const plan = await manager.plan(attaching);
    // Only /proc/meminfo exists in the container: nothing is created for the others.
    expect(plan.pairs).toEqual([{ source: `${VIEWS}${OWN}/proc/meminfo`, target: '/proc/meminfo', detachMountIds: [] }]);
  });

  it('walks a stack from the top while the mounts are ours or known dead, and stops at the first other', async () => {
    const procRoot = fakeProc(dir, [
      // meminfo: a dead predecessor's (the same dead device as uptime's top), our stale copy on it.
      line(610, 601, DEAD_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo' }),
      line(620, 610, MAIN_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo' }),
      // vmstat: ours (a stale copy from our other tree) on a live foreign mount on a dead
      // predecessor's: only ours is named.
      line(611, 601, DEAD_DEVICE, { root: '/proc/vmstat', target: '/proc/vmstat' }),
      line(621, 611, LIVE_PREDECESSOR_DEVICE, { root: '/proc/vmstat', target: '/proc/vmstat' }),
      line(631, 621, VIEWS_DEVICE, { root: `${OTHER_KEY_COPY}/proc/vmstat`, target: '/proc/vmstat' }),
      // stat: ours on a predecessor's whose connection nothing could ask: not named.
      line(612, 601, '0:45', { root: '/proc/stat', target: '/proc/stat' }),
      line(622, 612, MAIN_DEVICE, { root: '/proc/stat', target: '/proc/stat' }),
      // uptime: a dead predecessor's on top: the one asked, and found dead.
      line(613, 601, DEAD_DEVICE, { root: '/proc/uptime', target: '/proc/uptime' }),
    ], ['/proc/meminfo', '/proc/vmstat', '/proc/stat', '/proc/uptime']);
    const { manager } = makeManager(procRoot, { deadTargets: ['/proc/uptime'] });
    const plan = await manager.plan(attaching);
    const named = Object.fromEntries(plan.pairs.map((p) => [p.target, p.detachMountIds]));
    expect(named).toEqual({ '/proc/uptime': [613], '/proc/meminfo': [620, 610], '/proc/vmstat': [631], '/proc/stat': [622] });
  });

  it('a repair-only plan asks only isolfs mounts of our source, never another FUSE file system or instance', async () => {
    const procRoot = fakeProc(dir, [
      line(610, 601, DEAD_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo' }),
      line(611, 601, OTHER_INSTANCE_DEVICE, { root: '/proc/vmstat', target: '/proc/vmstat', source: 'isolfs:/srv/other/mnt' }),
      '612 600 0:46 / /mnt/data rw,relatime - fuse.sshfs host:/data rw,user_id=0,group_id=0',
      '613 600 0:47 / /var/lib/lxcfs rw,relatime - fuse.lxcfs lxcfs rw,user_id=0,group_id=0',
      '614 600 0:48 / /mnt/plain rw,relatime - fuse /dev/fuse rw,user_id=0,group_id=0',
      // Ours, of either tree: never asked.
      line(615, 601, MAIN_DEVICE, { root: '/proc/stat', target: '/proc/stat' }),
      line(616, 601, VIEWS_DEVICE, { root: `${OWN}/proc/uptime`, target: '/proc/uptime' }),
    ]);
    const { statfs, probed } = recordingStatfs((target) => (target === '/proc/meminfo' ? enotconn() : Promise.resolve({})));
    const { manager } = makeManager(procRoot, { statfs });
    const plan = await manager.plan(repairOnly);
    expect(probed).toEqual(['/proc/meminfo']);
    expect(plan.pairs).toEqual([{ source: `${MNT}/proc/meminfo`, target: '/proc/meminfo', detachMountIds: [610] }]);
  });

  it('never has two statfs outstanding: while a hung one is, no other mount is asked, and scans still complete', async () => {
    // meminfo: a predecessor whose daemon hangs (A); vmstat: a dead predecessor (B); stat: a dead
    // foreign FUSE mount on an attach target (C).
    const procRoot = fakeProc(dir, [
      line(610, 601, LIVE_PREDECESSOR_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo' }),
      line(611, 601, DEAD_DEVICE, { root: '/proc/vmstat', target: '/proc/vmstat' }),
      '612 601 0:46 /stat /proc/stat rw,relatime - fuse.lxcfs lxcfs rw,user_id=0,group_id=0',
    ]);
    let settleHung = (): void => undefined;
    const hung = new Promise((resolve) => {
      settleHung = () => resolve({});
    });
    const { statfs, probed } = recordingStatfs((target) => (target === '/proc/meminfo' ? hung : enotconn()));
    const helper = fakeHelper(dir);
    const { manager } = makeManager(procRoot, { statfs, statfsTimeoutMs: 20, helperPath: helper.path });
    /** What each helper run named for detaching, target by target. */
    const named = (): Record<string, string>[] => helper.calls().map((args) => Object.fromEntries(args.slice(5).filter((a) => !a.startsWith('@')).map((pair) => {
      const [, target = '', ids = ''] = pair.split(':');
      return [target, ids];
    })));

    // Scan 1: A is asked and never answers; B and C are not asked while it is outstanding.
    expect(await manager.scan()).toMatchObject({ inspected: 1, repairedMounts: 0, failures: 0 });
    expect(probed).toEqual(['/proc/meminfo']);
    // Scan 2 (the namespace is due again after an attach): A is still outstanding, nothing is asked.
    expect(await manager.scan()).toMatchObject({ inspected: 1, failures: 0 });
    expect(probed).toEqual(['/proc/meminfo']);
    const none = { '/proc/meminfo': '', '/proc/vmstat': '', '/proc/stat': '' };
    expect(named()).toEqual([none, none]);

    // A answers: scan 3 asks again, one mount at a time, and names B and C, found dead.
    settleHung();
    await new Promise((resolve) => setImmediate(resolve)); // past the probe's own settling
    expect(await manager.scan()).toMatchObject({ inspected: 1, repairedMounts: 1, failures: 0 });
    expect(probed).toEqual(['/proc/meminfo', '/proc/meminfo', '/proc/vmstat', '/proc/stat']);
    expect(named()[2]).toEqual({ '/proc/meminfo': '', '/proc/vmstat': '611', '/proc/stat': '612' });
  });

  it('attaches the views from the container-views tree and the control files from the main tree, in one plan', async () => {
    const files = ['/proc/meminfo', '/proc/uptime', '/sys/devices/system/cpu/online', '/proc/sys/kernel/stats_isolated', '/proc/sys/kernel/container_stats_isolated'];
    const procRoot = fakeProc(dir, [], files);
    const helper = fakeHelper(dir);
    const { manager, events } = makeManager(procRoot, { helperPath: helper.path });
    const plan = await manager.plan(attaching);
    expect(plan).toEqual({
      pid: PID, container: LOCATION, repairTargets: new Set(),
      pairs: [
        // The CPU directory whole from the main tree (per reader), online's copy on top of it.
        { source: `${MNT}/sys/devices/system/cpu`, target: '/sys/devices/system/cpu', detachMountIds: [] },
        { source: `${VIEWS}${OWN}/proc/meminfo`, target: '/proc/meminfo', detachMountIds: [] },
        { source: `${VIEWS}${OWN}/proc/uptime`, target: '/proc/uptime', detachMountIds: [] },
        { source: `${VIEWS}${OWN}/sys/devices/system/cpu/online`, target: '/sys/devices/system/cpu/online', detachMountIds: [] },
        { source: `${MNT}${OWN}/proc/sys/kernel/stats_isolated`, target: '/proc/sys/kernel/stats_isolated', detachMountIds: [] },
        { source: `${MNT}${OWN}/proc/sys/kernel/container_stats_isolated`, target: '/proc/sys/kernel/container_stats_isolated', detachMountIds: [] },
      ],
    });
    // One helper run binds from both mounts; the subtree is asked for once (the daemon's tree adds it to both).
    expect(await manager.apply(plan)).toHaveLength(files.length + 1);
    expect(events).toEqual([`addContainer ${KEY}`, `markAttached ${KEY}`]);
    expect(helper.calls()).toEqual([[...BATCH_ARGS, `@${PID}`, ...plan.pairs.map((p) => `${p.source}:${p.target}:`)]]);
  });

  it('replaces a view attached from our main tree (an older version\'s) with the views tree\'s copy; the views tree\'s stays', async () => {
    const meminfo = '/proc/meminfo';
    const control = '/proc/sys/kernel/stats_isolated';
    const files = [meminfo, control];
    const controlCopy = line(611, 601, MAIN_DEVICE, { root: `${OWN}${control}`, target: control });
    // The view's copy from our live main device: an older version's attach (it served views there).
    const fromMain = fakeProc(path.join(dir, 'main'), [line(610, 601, MAIN_DEVICE, { root: `${OWN}${meminfo}`, target: meminfo }), controlCopy], files);
    const plan = await makeManager(fromMain).manager.plan(attaching);
    expect(plan).toEqual({
      pid: PID, container: LOCATION, repairTargets: new Set(),
      pairs: [{ source: `${VIEWS}${OWN}${meminfo}`, target: meminfo, detachMountIds: [610] }],
    });
    // The same root from the views device, alone or on top of the older one: done, nothing to do.
    const fromViews = fakeProc(path.join(dir, 'views'), [line(610, 601, VIEWS_DEVICE, { root: `${OWN}${meminfo}`, target: meminfo }), controlCopy], files);
    expect((await makeManager(fromViews).manager.plan(attaching)).pairs).toEqual([]);
    const stacked = fakeProc(path.join(dir, 'stacked'), [
      line(610, 601, MAIN_DEVICE, { root: `${OWN}${meminfo}`, target: meminfo }),
      line(620, 610, VIEWS_DEVICE, { root: `${OWN}${meminfo}`, target: meminfo }),
      controlCopy,
    ], files);
    expect((await makeManager(stacked).manager.plan(attaching)).pairs).toEqual([]);
  });

  it('repairs a dead predecessor\'s copies from the tree that serves each now, whichever tree served it then', async () => {
    const control = '/proc/sys/kernel/container_stats_isolated';
    const otherControl = '/proc/sys/kernel/stats_isolated';
    const procRoot = fakeProc(dir, [
      // An older version's (its main tree served views): the view's copy now comes from the views tree.
      line(610, 601, DEAD_DEVICE, { root: `${OWN}/proc/meminfo`, target: '/proc/meminfo' }),
      // A predecessor's views tree.
      line(611, 601, DEAD_VIEWS_DEVICE, { root: `${OWN}/proc/vmstat`, target: '/proc/vmstat' }),
      // Control files stay in the main tree; another container's copy gets the shared file.
      line(612, 601, DEAD_DEVICE, { root: `${OWN}${control}`, target: control }),
      line(613, 601, DEAD_DEVICE, { root: `${OTHER_KEY_COPY}${otherControl}`, target: otherControl }),
    ]);
    const { manager } = makeManager(procRoot, { deadTargets: ['/proc/meminfo', '/proc/vmstat', control, otherControl] });
    const plan = await manager.plan(repairOnly);
    expect(plan).toEqual({
      pid: PID, container: LOCATION, repairTargets: new Set(['/proc/meminfo', '/proc/vmstat', control, otherControl]),
      pairs: [
        { source: `${VIEWS}${OWN}/proc/meminfo`, target: '/proc/meminfo', detachMountIds: [610] },
        { source: `${VIEWS}${OWN}/proc/vmstat`, target: '/proc/vmstat', detachMountIds: [611] },
        { source: `${MNT}${OWN}${control}`, target: control, detachMountIds: [612] },
        { source: `${MNT}${otherControl}`, target: otherControl, detachMountIds: [613] },
      ],
    });
  });

  it('has no side effects: the same plan twice, no subtree made, nothing marked, no helper run', async () => {
    const procRoot = fakeProc(dir, [
      line(611, 601, DEAD_DEVICE, { root: `${OWN}/proc/vmstat`, target: '/proc/vmstat' }),
      line(612, 601, MAIN_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo' }),
    ]);
    const helper = fakeHelper(dir);
    const { manager, events } = makeManager(procRoot, { deadTargets: ['/proc/vmstat'], helperPath: helper.path });
    const first = await manager.plan(attaching);
    const second = await manager.plan(attaching);
    expect(second).toEqual(first);
    expect(first.pairs.length).toBeGreaterThan(0);
    expect(events).toEqual([]);
    expect(helper.calls()).toEqual([]);
  });
});

describe('AttachManager.apply and scan', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-apply-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('apply creates the subtree, then marks the container attached, then runs the helper with the named ids', async () => {
    const procRoot = fakeProc(dir, [line(610, 601, MAIN_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo' })], ['/proc/meminfo', '/proc/vmstat']);
    const helper = fakeHelper(dir);
    const { manager, events } = makeManager(procRoot, { helperPath: helper.path });
    const plan = await manager.plan({ pid: PID, location: LOCATION, attach: true, ourDevices: OUR_DEVICES });
    const results = await manager.apply(plan);
    expect(events).toEqual([`addContainer ${KEY}`, `markAttached ${KEY}`]);
    expect(helper.calls()).toEqual([[
      ...BATCH_ARGS, `@${PID}`,
      `${VIEWS}${OWN}/proc/meminfo:/proc/meminfo:610`, `${VIEWS}${OWN}/proc/vmstat:/proc/vmstat:`,
    ]]);
    expect(results).toEqual([
      { target: '/proc/meminfo', ok: true, detachedMounts: 1 },
      { target: '/proc/vmstat', ok: true, detachedMounts: 0 },
    ]);
  });

  it('apply of a repair-only plan of shared files touches neither tree nor registry', async () => {
    const procRoot = fakeProc(dir, [line(610, 601, DEAD_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo' })]);
    const helper = fakeHelper(dir);
    const { manager, events } = makeManager(procRoot, { helperPath: helper.path, deadTargets: ['/proc/meminfo'] });
    const plan = await manager.plan({ pid: PID, location: LOCATION, attach: false, ourDevices: OUR_DEVICES });
    expect(await manager.apply(plan)).toEqual([{ target: '/proc/meminfo', ok: true, detachedMounts: 1 }]);
    expect(events).toEqual([]);
  });

  it('apply does not mark a container the tree refused, nor bind sources from its subtree (in either tree)', async () => {
    const control = '/proc/sys/kernel/stats_isolated';
    const procRoot = fakeProc(dir, [line(610, 601, DEAD_DEVICE, { root: '/proc/stat', target: '/proc/stat' })], ['/proc/meminfo', '/proc/stat', control]);
    const helper = fakeHelper(dir);
    const { manager, events } = makeManager(procRoot, { helperPath: helper.path, refuseKeys: true, deadTargets: ['/proc/stat'] });
    const plan = await manager.plan({ pid: PID, location: LOCATION, attach: true, ourDevices: OUR_DEVICES });
    expect(plan.pairs.map((p) => p.source)).toEqual([`${VIEWS}${OWN}/proc/stat`, `${VIEWS}${OWN}/proc/meminfo`, `${MNT}${OWN}${control}`]);
    await manager.apply(plan);
    expect(events).toEqual([`addContainer ${KEY}`]);
    expect(helper.calls()).toEqual([]);
    // (All sources were the container's copies: the attach replaced the repair's shared file.)
  });

  it('a scan attaches through plan and apply, and looks again on the next scan', async () => {
    const procRoot = fakeProc(dir, [], ['/proc/meminfo']);
    const helper = fakeHelper(dir);
    const { manager, events } = makeManager(procRoot, { helperPath: helper.path });
    const report = await manager.scan();
    expect(report).toMatchObject({ namespaces: 1, inspected: 1, attachedContainers: 1, failures: 0 });
    expect(events).toEqual([`addContainer ${KEY}`, `markAttached ${KEY}`]);
    expect((await manager.scan()).inspected).toBe(1); // after an attach: again on the next scan
  });

  it('a scan with either of our trees missing from our mountinfo attaches and repairs nothing', async () => {
    const [mainMount, viewsMount] = OUR_MOUNTS;
    const missing: Record<string, string[]> = {
      'views missing': [mainMount],
      'main missing': [viewsMount],
      // Something at the views mountpoint, but not ours: another source, or not the tree's root.
      'views of another source': [mainMount, line(51, 1, VIEWS_DEVICE, { root: '/', target: VIEWS, source: 'isolfs:/srv/other/mnt' })],
      'views not at its root': [mainMount, line(51, 1, VIEWS_DEVICE, { root: '/containers', target: VIEWS })],
    };
    for (const [name, ourMounts] of Object.entries(missing)) {
      const sub = path.join(dir, name.replaceAll(' ', '-'));
      const procRoot = fakeProc(sub, [line(610, 601, DEAD_DEVICE, { root: '/proc/vmstat', target: '/proc/vmstat' })], ['/proc/meminfo', '/proc/vmstat'], ourMounts);
      const helper = fakeHelper(sub);
      const { statfs, probed } = recordingStatfs(() => enotconn());
      const { manager, events } = makeManager(procRoot, { helperPath: helper.path, statfs });
      expect(await manager.scan(), name).toMatchObject({ namespaces: 0, inspected: 0, repairedMounts: 0, attachedContainers: 0, failures: 0 });
      expect({ events, calls: helper.calls(), probed }, name).toEqual({ events: [], calls: [], probed: [] });
      // With both trees there, the same scan repairs and attaches.
      fs.writeFileSync(path.join(procRoot, 'self', 'mountinfo'), [...OUR_MOUNTS, ''].join('\n'));
      expect(await manager.scan(), name).toMatchObject({ namespaces: 1, inspected: 1, repairedMounts: 1, attachedContainers: 1, failures: 0 });
      expect(helper.calls(), name).toHaveLength(1);
    }
  });

  it('ESRCH from the helper forgets the namespace (looked at again next scan); another failure waits', async () => {
    // Repair only: while attaching, a namespace whose helper failed is due again anyway.
    const procRoot = fakeProc(dir, [line(610, 601, DEAD_DEVICE, { root: '/proc/meminfo', target: '/proc/meminfo' })]);
    const gone = fakeHelper(dir, `echo "isolfs-attach: ESRCH pid $2: cannot open its mount namespace: No such process" >&2; exit 3`);
    const esrch = makeManager(procRoot, { helperPath: gone.path, prefixes: [], deadTargets: ['/proc/meminfo'] });
    expect(await esrch.manager.scan()).toMatchObject({ inspected: 1, failures: 1, repairedMounts: 0 });
    expect(await esrch.manager.scan()).toMatchObject({ inspected: 1, failures: 1 });
    expect(gone.calls()).toHaveLength(2);

    fs.rmSync(`${gone.path}.log`);
    const refused = fakeHelper(dir, `echo "isolfs-attach: EPERM pid $2: setns into its mount namespace: Operation not permitted" >&2; exit 3`);
    const eperm = makeManager(procRoot, { helperPath: refused.path, prefixes: [], deadTargets: ['/proc/meminfo'] });
    expect(await eperm.manager.scan()).toMatchObject({ inspected: 1, failures: 1 });
    expect(await eperm.manager.scan()).toMatchObject({ inspected: 0, failures: 0 });
    expect(refused.calls()).toHaveLength(1);
  });

  it('forgets a namespace that vanished: it is looked at as new when it comes back', async () => {
    const procRoot = fakeProc(dir, [], []);
    const { manager } = makeManager(procRoot, { prefixes: [] });
    expect((await manager.scan()).inspected).toBe(1);
    expect((await manager.scan()).inspected).toBe(0); // handled: not due for 6 scans
    const moved = path.join(dir, 'moved');
    fs.renameSync(path.join(procRoot, String(PID)), moved);
    expect(await manager.scan()).toMatchObject({ namespaces: 0, inspected: 0 });
    fs.renameSync(moved, path.join(procRoot, String(PID)));
    expect((await manager.scan()).inspected).toBe(1);
  });
});
