import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseProcCgroup, readProcCgroup } from '../../src/identity/procCgroup';

/** This machine's /proc/self/cgroup (hybrid: v1 controllers, one named hierarchy, cgroup2). */
const HYBRID = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/6000fa4733e63b5c029e087d057f3e65
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
`;

/** A Docker-on-v1 host: co-mounted controllers in one line. */
const V1_ONLY = `12:hugetlb:/docker/3f1c0ffee
11:cpu,cpuacct:/docker/3f1c0ffee
10:net_cls,net_prio:/docker/3f1c0ffee
9:memory:/docker/3f1c0ffee
1:name=systemd:/docker/3f1c0ffee
`;

/** A Kubernetes node on cgroup v2 (systemd driver). */
const V2_ONLY =
  '0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice/cri-containerd-9f8e.scope\n';

describe('parseProcCgroup', () => {
  it('maps every v1 controller of a hybrid host to its path and keeps the unified path', () => {
    const entries = parseProcCgroup(HYBRID);
    expect(entries.v1.get('memory')).toBe('/process_api/6000fa4733e63b5c029e087d057f3e65');
    expect(entries.v1.get('cpu')).toBe('/');
    expect(entries.v1.get('cpuacct')).toBe('/');
    expect(entries.v1.get('name=systemd')).toBe('/');
    expect(entries.v1.size).toBe(9);
    expect(entries.unified).toBe('/');
    expect(entries.relativeToOtherNamespace).toBe(false);
  });

  it('splits co-mounted controllers ("cpu,cpuacct") into one entry each', () => {
    const entries = parseProcCgroup(V1_ONLY);
    expect(entries.v1.get('cpu')).toBe('/docker/3f1c0ffee');
    expect(entries.v1.get('cpuacct')).toBe('/docker/3f1c0ffee');
    expect(entries.v1.get('net_prio')).toBe('/docker/3f1c0ffee');
    expect(entries.v1.has('cpu,cpuacct')).toBe(false);
    expect(entries.unified).toBeNull();
  });

  it('reads a pure v2 line into unified with no v1 entries', () => {
    const entries = parseProcCgroup(V2_ONLY);
    expect(entries.v1.size).toBe(0);
    expect(entries.unified).toBe(
      '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice/cri-containerd-9f8e.scope',
    );
  });

  it('keeps paths outside our cgroup namespace verbatim and flags them', () => {
    const entries = parseProcCgroup('0::/../../kubepods.slice/x.scope\n');
    expect(entries.unified).toBe('/../../kubepods.slice/x.scope');
    expect(entries.relativeToOtherNamespace).toBe(true);
    expect(parseProcCgroup('4:memory:/..\n0::/\n').relativeToOtherNamespace).toBe(true);
    // A name that merely starts with ".." is inside the namespace.
    expect(parseProcCgroup('0::/..hidden\n').relativeToOtherNamespace).toBe(false);
  });

  it('keeps a ":" inside a cgroup name as part of the path', () => {
    expect(parseProcCgroup('0::/system.slice/a:b.service\n').unified).toBe('/system.slice/a:b.service');
  });

  it('tolerates blank lines and a missing final newline', () => {
    const entries = parseProcCgroup('\n4:memory:/a\n\n0::/b');
    expect(entries.v1.get('memory')).toBe('/a');
    expect(entries.unified).toBe('/b');
  });

  it.each([
    ['a line without colons', 'memory\n'],
    ['a non-numeric id', 'x:memory:/\n'],
    ['a relative path', '4:memory:docker/1\n'],
    ['a v1 line without controllers', '4::/a\n'],
    ['controllers on the v2 line', '0:memory:/a\n'],
    ['an empty controller in a list', '4:cpu,:/a\n'],
  ])('rejects %s with an error quoting the line', (_name, text) => {
    expect(() => parseProcCgroup(text)).toThrow(/\/proc\/<pid>\/cgroup line 1 .*"/);
  });
});

describe('readProcCgroup', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-proc-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("reads this process's own entry from the live /proc", () => {
    const entries = readProcCgroup('/proc', process.pid);
    expect(entries).not.toBeNull();
    expect(entries!.v1.size + (entries!.unified === null ? 0 : 1)).toBeGreaterThan(0);
    expect(entries).toEqual(parseProcCgroup(fs.readFileSync('/proc/self/cgroup', 'utf8')));
  });

  it('reads a thread id, not only a process id', () => {
    // /proc/<pid>/task/<tid> lists the threads; each tid resolves as /proc/<tid> too.
    const tids = fs.readdirSync(`/proc/${process.pid}/task`).map(Number);
    const otherThread = tids.find((tid) => tid !== process.pid) ?? process.pid;
    expect(readProcCgroup('/proc', otherThread)).not.toBeNull();
  });

  it('returns null for a pid that is gone', () => {
    fs.mkdirSync(path.join(tmp, '1234'));
    fs.writeFileSync(path.join(tmp, '1234', 'cgroup'), '0::/a\n');
    expect(readProcCgroup(tmp, 1234)?.unified).toBe('/a');
    expect(readProcCgroup(tmp, 99999)).toBeNull();
    // and on the live /proc: pid_max is at most 2^22, so this pid never exists
    expect(readProcCgroup('/proc', 2 ** 22 + 1)).toBeNull();
  });

  it('names the file when its content is malformed', () => {
    fs.mkdirSync(path.join(tmp, '55'));
    fs.writeFileSync(path.join(tmp, '55', 'cgroup'), 'garbage\n');
    expect(() => readProcCgroup(tmp, 55)).toThrow(`${tmp}/55/cgroup: `);
  });
});
