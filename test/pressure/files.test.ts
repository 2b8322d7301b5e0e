/**
 * PressureFiles (pressure/files.ts) on a fake tree: where content comes from, what a pure v1 host
 * answers, and the trigger bounds and rules, with regular files standing in for the kernel's (a
 * regular file takes any write: what is checked is what PressureFiles does before and after).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { constants as osConstants } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isErrno, type TriggerLease } from '../../src/fuse/fileBackend';
import { MAX_TRIGGERS_PER_CONTAINER, PressureFiles } from '../../src/pressure/files';
import { createLogger } from '../../src/log';
import type { CgroupLocation } from '../../src/cgroup/snapshot';
import type { ContainerRecord } from '../../src/containers/registry';

const { errno: E } = osConstants;
const PSI = 'some avg10=1.50 avg60=0.20 avg300=0.00 total=123\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=4\n';
const ROOT = { pid: 10, uid: 0, gid: 0 };
const NOBODY = { pid: 11, uid: 65534, gid: 65534 };

describe('PressureFiles', () => {
  let dir: string;
  let files: PressureFiles;
  let location: CgroupLocation;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-pressure-'));
    const cgroup = path.join(dir, 'cgroup', 'c1');
    fs.mkdirSync(cgroup, { recursive: true });
    for (const r of ['cpu', 'memory', 'io']) fs.writeFileSync(path.join(cgroup, `${r}.pressure`), PSI);
    fs.mkdirSync(path.join(dir, 'proc', 'pressure'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'proc', 'pressure', 'memory'), 'some avg10=9.99 avg60=0.00 avg300=0.00 total=9\n');
    for (const [pid, capEff] of [[10, '000001ffffffffff'], [11, '0000000000000000']] as const) {
      fs.mkdirSync(path.join(dir, 'proc', String(pid)));
      fs.writeFileSync(path.join(dir, 'proc', String(pid), 'status'), `Name:\tx\nCapEff:\t${capEff}\n`);
    }
    // Decisions are the backend's (tested there): here everyone is the isolated container c1.
    const decide = () => ({ isolated: true as const, container: { location } as ContainerRecord });
    files = new PressureFiles({ procRoot: path.join(dir, 'proc'), unifiedRoot: path.join(dir, 'cgroup') }, createLogger('silent'), { decide, decideFor: decide }, { attachedLocation: () => location });
    location = { key: '/c1', version: 2, dirs: {}, roots: {}, unifiedDir: cgroup };
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("an isolated container reads its cgroup's file; others the host's; without a cgroup2 dir ENOENT", () => {
    expect(files.readFrom('/proc/pressure/memory', files.sourceOf(location))).toEqual(Buffer.from(PSI));
    expect(files.readFrom('/proc/pressure/memory', files.sourceOf(null))?.toString()).toContain('avg10=9.99');
    expect(files.readFrom('/proc/pressure/memory', files.sourceOf({ ...location, unifiedDir: null }))).toEqual({ errno: E.ENOENT });
    // A container left in the cgroup2 root: the root's PSI is the host's, not the container's.
    expect(files.sourceOf({ ...location, unifiedDir: path.join(dir, 'cgroup') })).toBeNull();
    fs.writeFileSync(path.join(location.unifiedDir as string, 'io.pressure'), 'garbage\n');
    expect(files.readFrom('/proc/pressure/io', files.sourceOf(location))).toEqual({ errno: E.EIO });
  });

  it("writes /proc's cut of the trigger to the cgroup's file, on an fd of its own", () => {
    const lease = files.openTriggerOn('/proc/pressure/memory', files.sourceOf(location), ROOT, Buffer.from('some 150000 1000000\n'));
    expect(isErrno(lease)).toBe(false);
    expect(fs.readFileSync(path.join(location.unifiedDir as string, 'memory.pressure'), 'utf8')).toMatch(/^some 150000 1000000(?!\n)/); // the newline was cut
    expect(files.triggers).toBe(1);
    (lease as TriggerLease).release(true);
    (lease as TriggerLease).release(true); // once only
    expect(files.triggers).toBe(0);
  });

  it('a writer without CAP_SYS_RESOURCE: a window not a multiple of 2 s is EINVAL, nothing written', () => {
    const source = files.sourceOf(location);
    expect(files.openTriggerOn('/proc/pressure/cpu', source, NOBODY, Buffer.from('some 150000 1000000\n'))).toEqual({ errno: E.EINVAL });
    expect(fs.readFileSync(path.join(location.unifiedDir as string, 'cpu.pressure'), 'utf8')).toBe(PSI);
    const lease = files.openTriggerOn('/proc/pressure/cpu', source, NOBODY, Buffer.from('some 150000 2000000\n'));
    expect(isErrno(lease)).toBe(false);
    if (!isErrno(lease)) lease.release(true);
    expect(files.openTriggerOn('/proc/pressure/cpu', source, NOBODY, Buffer.alloc(0))).toEqual({ errno: E.EINVAL });
  });

  it(`at most ${MAX_TRIGGERS_PER_CONTAINER} triggers per container (EMFILE), counted apart from the host's`, () => {
    const source = files.sourceOf(location);
    const leases: TriggerLease[] = [];
    for (let i = 0; i < MAX_TRIGGERS_PER_CONTAINER; i++) {
      const lease = files.openTriggerOn('/proc/pressure/io', source, ROOT, Buffer.from('some 1 2000000\n'));
      if (isErrno(lease)) throw new Error(`refused at ${i}: ${lease.errno}`);
      leases.push(lease);
    }
    expect(files.openTriggerOn('/proc/pressure/io', source, ROOT, Buffer.from('some 1 2000000\n'))).toEqual({ errno: E.EMFILE });
    const host = files.openTriggerOn('/proc/pressure/memory', files.sourceOf(null), ROOT, Buffer.from('some 1 2000000\n'));
    expect(isErrno(host)).toBe(false);
    leases.pop()?.release(true);
    const again = files.openTriggerOn('/proc/pressure/io', source, ROOT, Buffer.from('some 1 2000000\n'));
    expect(isErrno(again)).toBe(false);
    for (const lease of [...leases, host, again]) if (!isErrno(lease)) lease.release(true);
    expect(files.triggers).toBe(0);
  });

  it('requests: a per-container copy shows its container (ENOENT once gone); triggers only on pressure files', () => {
    expect(files.read({ file: '/proc/pressure/cpu', caller: ROOT, container: '/c1' })).toEqual(Buffer.from(PSI));
    const gone = new PressureFiles({ procRoot: path.join(dir, 'proc'), unifiedRoot: path.join(dir, 'cgroup') }, createLogger('silent'),
      { decide: () => ({ isolated: false, reason: 'host-switch-off' }), decideFor: () => ({ isolated: false, reason: 'host-switch-off' }) },
      { attachedLocation: () => undefined });
    expect(gone.read({ file: '/proc/pressure/cpu', caller: ROOT, container: '/c1' })).toEqual({ errno: E.ENOENT });
    expect(gone.read({ file: '/proc/pressure/memory', caller: ROOT })?.toString()).toContain('avg10=9.99');
    expect(files.openTrigger({ file: '/proc/meminfo', caller: ROOT, data: Buffer.from('x'), offset: 0 })).toEqual({ errno: E.EACCES });
  });

  it("the kernel's errno comes back (here: no such file)", () => {
    fs.rmSync(path.join(location.unifiedDir as string, 'memory.pressure'));
    expect(files.openTriggerOn('/proc/pressure/memory', files.sourceOf(location), ROOT, Buffer.from('some 1 2000000\n'))).toEqual({ errno: E.ENOENT });
    expect(files.triggers).toBe(0);
  });
});
