/** IsolfsFilesystem's answers to each FUSE operation, through a fake addon: no root, no FUSE. */
import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { GrantedWrite } from '../../src/fuse/fileBackend';
import { containerDirName } from '../../src/fuse/filesystem';
import { CONTROL_PATHS, VIEW_PATHS, type ServedPath } from '../../src/fuse/layout';
import { FUSE_OP_NAMES, NativeLoadError, REQUEST_FIELD_NAMES, checkAddon, nativeBuildDir } from '../../src/fuse/native';
import { FAKE_FIELDS, FAKE_OPS, harness } from './fake-native';

const E = osConstants.errno;
const O_WRONLY = 1;
const O_RDWR = 2;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

afterEach(() => { vi.restoreAllMocks(); });

describe('the request the handler reads', () => {
  it('dispatches by the op codes the addon exports, reading each field at the index it exports', () => {
    const { request, lookupPath } = harness();
    const entry = request('lookup', lookupPath('/proc'), { name: 'meminfo' });
    expect(entry.kind).toBe('entry');
    expect(entry.args[0]).toBe(lookupPath('/proc/meminfo'));
    // uid has its own slot: root may truncate a control file, uid 65534 may not.
    const control = lookupPath('/proc/sys/kernel/stats_isolated');
    expect(request('setattr', control, { flags: 8, uid: 0 }).kind).toBe('attr');
    expect(request('setattr', control, { flags: 8, uid: 65534 }).args[0]).toBe(E.EACCES);
  });

  it('answers an op code the addon did not export with ENOSYS', () => {
    const { outcome } = harness();
    const unknown = Math.max(...Object.values(FAKE_OPS)) + 1;
    expect(outcome(unknown, 1)).toBe(E.ENOSYS);
    expect(outcome(6, 1)).toBe(E.ENOSYS); // the real addon's GETATTR code: not this addon's
  });

  it('lets no name or data outlive the request that carried it', () => {
    const { fs: filesystem, request, lookupPath } = harness();
    request('lookup', lookupPath('/proc'), { name: 'stat' });
    const kept = (filesystem as unknown as { request: { name?: string; data?: Buffer } }).request;
    expect([kept.name, kept.data]).toEqual([undefined, undefined]);
  });
});

describe('LOOKUP and GETATTR', () => {
  it('gives files and directories their inode, mode, link count and size', () => {
    const { request, lookupPath } = harness();
    const proc = lookupPath('/proc');
    const attrsOf = (ino: number): unknown[] => request('getattr', ino).args.slice(0, 4);
    expect(attrsOf(proc)).toEqual([proc, S_IFDIR | 0o555, 2, 0]);
    expect(attrsOf(lookupPath('/proc/meminfo'))).toEqual([lookupPath('/proc/meminfo'), S_IFREG | 0o444, 1, 0]);
    expect(attrsOf(lookupPath('/proc/sys/kernel/stats_isolated')).slice(1)).toEqual([S_IFREG | 0o644, 1, 0]);
    expect(request('lookup', 1, { name: 'proc' }).args.slice(0, 4)).toEqual([proc, S_IFDIR | 0o555, 2, 0]);
  });

  it('answers ENOENT for an unknown name, a name under a file and an unknown inode', () => {
    const { outcome, lookupPath } = harness();
    expect(outcome('lookup', lookupPath('/proc'), { name: 'nonesuch' })).toBe(E.ENOENT);
    expect(outcome('lookup', lookupPath('/proc/meminfo'), { name: 'x' })).toBe(E.ENOENT);
    expect(outcome('lookup', 999_999, { name: 'proc' })).toBe(E.ENOENT);
    expect(outcome('getattr', 999_999)).toBe(E.ENOENT);
  });
});

describe('OPEN, READ and RELEASE', () => {
  it('renders at open for the opener and hands native the content, with re-reads from offset 0 sent to JS', () => {
    const { open, lookupPath } = harness();
    const opened = open(lookupPath('/proc/meminfo'), { uid: 1234 });
    expect(opened.content?.toString()).toBe('content of uid 1234\n');
    expect(opened.freshOnRewind).toBe(true);
    expect(opened.storeFirst).toBe(false);
  });

  it('answers a READ native passed on from fresh content for the reader, and gives native that content', () => {
    const { open, request, lookupPath, setContents } = harness();
    const { fh } = open(lookupPath('/proc/meminfo'), { uid: 1 });
    const reply = request('read', 0, { fh, offset: 0, size: 4096, uid: 2 });
    expect(reply.kind).toBe('buf');
    expect((reply.args[0] as Buffer).toString()).toBe('content of uid 2\n');
    expect(setContents.map((c) => [c.fh, c.content.toString()])).toEqual([[fh, 'content of uid 2\n']]);
    // at an offset: that part of the fresh content; at or past its end: nothing
    expect((request('read', 0, { fh, offset: 11, size: 3, uid: 3 }).args[0] as Buffer).toString()).toBe('uid');
    expect((request('read', 0, { fh, offset: 100, uid: 3 }).args[0] as Buffer).length).toBe(0);
  });

  it('renders a re-read for the opener when the reader is not visible to us (pid 0)', () => {
    const { open, request, lookupPath } = harness();
    const { fh } = open(lookupPath('/proc/meminfo'), { uid: 1 });
    expect((request('read', 0, { fh, pid: 0, uid: 2 }).args[0] as Buffer).toString()).toBe('content of uid 1\n');
  });

  it('passes the backend errno through at open and at a re-read', () => {
    let failWith = 0;
    const { open, outcome, lookupPath } = harness({}, {
      read: () => (failWith ? { errno: failWith } : Buffer.from('x')),
    });
    const { fh } = open(lookupPath('/proc/stat'));
    failWith = E.ESRCH;
    expect(outcome('open', lookupPath('/proc/stat'))).toBe(E.ESRCH);
    expect(outcome('read', 0, { fh })).toBe(E.ESRCH);
  });

  it('refuses to open a directory (EISDIR), a view for writing (EACCES) and an unknown inode (ENOENT)', () => {
    const { outcome, lookupPath } = harness();
    expect(outcome('open', lookupPath('/proc'))).toBe(E.EISDIR);
    expect(outcome('open', lookupPath('/proc/meminfo'), { flags: O_WRONLY })).toBe(E.EACCES);
    expect(outcome('open', lookupPath('/proc/meminfo'), { flags: O_RDWR })).toBe(E.EACCES);
    expect(outcome('open', 999_999)).toBe(E.ENOENT);
  });

  it('opens a control file write-only without rendering it, and refuses READs of that handle (EBADF)', () => {
    const rendered: ServedPath[] = [];
    const { open, outcome, lookupPath } = harness({}, { read: ({ file }) => { rendered.push(file); return Buffer.from('0\n'); } });
    const { fh, content } = open(lookupPath('/proc/sys/kernel/stats_isolated'), { flags: O_WRONLY });
    expect(content).toBeUndefined();
    expect(rendered).toEqual([]);
    expect(outcome('read', 0, { fh })).toBe(E.EBADF);
  });

  it('forgets a handle at RELEASE without answering it, after which its READs get EBADF', () => {
    const { fs: filesystem, open, outcome, release, replies, lookupPath } = harness();
    const { fh } = open(lookupPath('/proc/meminfo'));
    expect(filesystem.openHandles).toBe(1);
    const answered = replies.length;
    release(fh);
    expect(replies.length).toBe(answered);
    expect(filesystem.openHandles).toBe(0);
    expect(outcome('read', 0, { fh })).toBe(E.EBADF);
  });

  it('costs one request, answered EIO, when the backend throws', () => {
    const { outcome, lookupPath } = harness({}, { read: () => { throw new Error('bug'); } });
    expect(outcome('open', lookupPath('/proc/meminfo'))).toBe(E.EIO);
    expect(outcome('getattr', 1)).toBe('attr');
  });

  it('times every render for the backend (outcome ok or errno-N)', () => {
    const seen: string[] = [];
    let fail = false;
    const { open, outcome, lookupPath } = harness({}, {
      read: () => (fail ? { errno: E.EIO } : Buffer.from('x')),
      observe: (p, result, seconds) => { seen.push(`${p} ${result} ${seconds >= 0}`); },
    });
    open(lookupPath('/proc/loadavg'));
    fail = true;
    outcome('open', lookupPath('/proc/loadavg'));
    expect(seen).toEqual(['/proc/loadavg ok true', `/proc/loadavg errno-${E.EIO} true`]);
  });
});

describe('WRITE', () => {
  it('hands a control file write to the backend with what its open was granted (the opener\'s), bytes and offset', () => {
    const writes: GrantedWrite[] = [];
    const { fs: filesystem, open, request, lookupPath } = harness({}, {
      write: (written) => { writes.push(written); return 2; },
    });
    filesystem.addContainer('/c1');
    const shared = open(lookupPath('/proc/sys/kernel/stats_isolated'), { flags: O_WRONLY, pid: 7, uid: 0, gid: 5 });
    const own = open(lookupPath(`/containers/${containerDirName('/c1')}/proc/sys/kernel/container_stats_isolated`), { flags: O_WRONLY, pid: 8, uid: 0, gid: 0 });
    const reply = request('write', 0, { fh: shared.fh, data: Buffer.from('1\n'), offset: 0, pid: 70, uid: 1000, gid: 1000 });
    expect([reply.kind, reply.args[0]]).toEqual(['write', 2]);
    request('write', 0, { fh: own.fh, data: Buffer.from('0\n'), offset: 3, pid: 80, uid: 1000, gid: 1000 });
    expect(writes).toEqual([
      { grant: { file: '/proc/sys/kernel/stats_isolated', opener: { pid: 7, uid: 0, gid: 5 }, container: null }, data: Buffer.from('1\n'), offset: 0 },
      { grant: { file: '/proc/sys/kernel/container_stats_isolated', opener: { pid: 8, uid: 0, gid: 0 }, container: '/c1' }, data: Buffer.from('0\n'), offset: 3 },
    ]);
  });

  it('answers the open\'s errno from authorizeWrite at OPEN, never at WRITE', () => {
    const { open, outcome, lookupPath } = harness({}, { authorizeWrite: () => ({ errno: E.EACCES }) });
    const node = lookupPath('/proc/sys/kernel/stats_isolated');
    expect(outcome('open', node, { flags: O_WRONLY, uid: 1000 })).toBe(E.EACCES);
    const reading = open(node, { flags: 0, uid: 1000 });
    expect(outcome('write', 0, { fh: reading.fh, data: Buffer.from('1'), uid: 0 })).toBe(E.EBADF);
  });

  it('answers the backend errno, and EBADF for a handle not opened for writing or unknown', () => {
    const { open, outcome, lookupPath } = harness({}, { write: () => ({ errno: E.EPERM }) });
    const control = open(lookupPath('/proc/sys/kernel/stats_isolated'), { flags: O_WRONLY });
    const view = open(lookupPath('/proc/meminfo'));
    expect(outcome('write', 0, { fh: control.fh, data: Buffer.from('1') })).toBe(E.EPERM);
    expect(outcome('write', 0, { fh: view.fh, data: Buffer.from('1') })).toBe(E.EBADF);
    expect(outcome('write', 0, { fh: 424242, data: Buffer.from('1') })).toBe(E.EBADF);
  });
});

describe('OPENDIR and READDIR', () => {
  it('lists ".", ".." and the children with their inodes and file types, from the offset asked', () => {
    const { request, lookupPath } = harness();
    const kernel = lookupPath('/proc/sys/kernel');
    const reply = request('readdir', kernel, { offset: 0, size: 4096 });
    const [names, inos, modes, offset, size] = reply.args as [string[], number[], number[], number, number];
    expect(names).toEqual(['.', '..', 'stats_isolated', 'container_stats_isolated']);
    expect(inos).toEqual([kernel, lookupPath('/proc/sys'), lookupPath('/proc/sys/kernel/stats_isolated'),
      lookupPath('/proc/sys/kernel/container_stats_isolated')]);
    expect(modes).toEqual([S_IFDIR, S_IFDIR, S_IFREG, S_IFREG]);
    expect([offset, size]).toEqual([0, 4096]);
    expect(request('readdir', kernel, { offset: 3 }).args[3]).toBe(3);
  });

  it('lists nothing at or past the last entry (or at an offset no index has)', () => {
    const { request, lookupPath } = harness();
    const proc = lookupPath('/proc');
    const names = (offset: number): unknown => request('readdir', proc, { offset }).args[0];
    const count = (names(0) as string[]).length;
    for (const offset of [count, count + 1, 2 ** 32 + 1, 2 ** 62, -1, Number.NaN]) expect(names(offset)).toEqual([]);
  });

  it('opens directories only: ENOTDIR for a file, ENOENT for an unknown inode', () => {
    const { outcome, lookupPath } = harness();
    expect(outcome('opendir', lookupPath('/proc'))).toBe('open');
    expect(outcome('opendir', lookupPath('/proc/meminfo'))).toBe(E.ENOTDIR);
    expect(outcome('readdir', lookupPath('/proc/meminfo'))).toBe(E.ENOTDIR);
    expect(outcome('opendir', 999_999)).toBe(E.ENOENT);
  });
});

describe('SETATTR and ACCESS', () => {
  it('SETATTR: mode/owner EPERM, size EACCES (control files: root only, a no-op), times EPERM unless root', () => {
    const { outcome, lookupPath } = harness();
    const view = lookupPath('/proc/meminfo');
    const control = lookupPath('/proc/sys/kernel/stats_isolated');
    expect(outcome('setattr', view, { flags: 1 })).toBe(E.EPERM); // chmod
    expect(outcome('setattr', view, { flags: 2, uid: 0 })).toBe(E.EPERM); // chown, even root
    expect(outcome('setattr', view, { flags: 8, uid: 0 })).toBe(E.EACCES); // truncate a view
    expect(outcome('setattr', control, { flags: 8 })).toBe(E.EACCES);
    expect(outcome('setattr', control, { flags: 8, uid: 0 })).toBe('attr');
    expect(outcome('setattr', view, { flags: (1 << 7) | (1 << 8) })).toBe(E.EPERM); // touch
    expect(outcome('setattr', view, { flags: (1 << 7) | (1 << 8), uid: 0 })).toBe('attr');
    expect(outcome('setattr', 999_999, { flags: 8, uid: 0 })).toBe(E.ENOENT);
  });

  it('ACCESS: W_OK only on control files for root, X_OK never on files, anything else granted', () => {
    const { request, lookupPath } = harness();
    const view = lookupPath('/proc/meminfo');
    const control = lookupPath('/proc/sys/kernel/stats_isolated');
    const proc = lookupPath('/proc');
    const answer = (ino: number, mask: number, uid = 65534): unknown => request('access', ino, { flags: mask, uid }).args[0];
    expect([answer(view, 4), answer(view, 2), answer(view, 2, 0), answer(view, 1)]).toEqual([0, E.EACCES, E.EACCES, E.EACCES]);
    expect([answer(control, 2), answer(control, 2, 0), answer(control, 6, 0)]).toEqual([E.EACCES, 0, 0]);
    expect([answer(proc, 1), answer(proc, 5), answer(proc, 2, 0), answer(proc, 0)]).toEqual([0, 0, E.EACCES, 0]);
    expect(answer(999_999, 4)).toBe(E.ENOENT);
  });
});

describe('the open-handle limit', () => {
  it('answers ENFILE past maxOpenHandles, tells onLimit once per 10 s how many were refused, and opens again after a RELEASE', () => {
    let nowMs = 1_000_000;
    vi.spyOn(Date, 'now').mockImplementation(() => nowMs);
    const refused: number[] = [];
    const { fs: filesystem, open, outcome, release, lookupPath } = harness({ maxOpenHandles: 2, onLimit: (n) => refused.push(n) });
    const meminfo = lookupPath('/proc/meminfo');
    const first = open(meminfo);
    open(meminfo);
    expect(outcome('open', meminfo)).toBe(E.ENFILE);
    expect(outcome('open', meminfo)).toBe(E.ENFILE);
    expect(outcome('open', meminfo)).toBe(E.ENFILE);
    expect(refused).toEqual([1]); // the later refusals fall in the same 10 s
    nowMs += 10_000;
    expect(outcome('open', meminfo)).toBe(E.ENFILE);
    expect(refused).toEqual([1, 3]);
    release(first.fh);
    expect(filesystem.openHandles).toBe(1);
    expect(outcome('open', meminfo)).toBe('open');
  });
});

describe('per-container subtrees', () => {
  const dirOf = (key: string): string => `/containers/${containerDirName(key)}`;

  it('main tree: adds the control files under /containers/<key>/ (the views are in the container-views tree)', () => {
    const { fs: filesystem, open, lookupPath, outcome } = harness();
    expect(filesystem.addContainer('/kubepods/pod1/c1')).toBe(true);
    for (const p of CONTROL_PATHS) expect(lookupPath(`${dirOf('/kubepods/pod1/c1')}${p}`)).toBeGreaterThan(1);
    const proc = lookupPath(`${dirOf('/kubepods/pod1/c1')}/proc`);
    expect(outcome('lookup', proc, { name: 'meminfo' })).toBe(E.ENOENT);
    const opened = open(lookupPath(`${dirOf('/kubepods/pod1/c1')}/proc/sys/kernel/container_stats_isolated`), { uid: 99 });
    expect(opened.content?.toString()).toBe('content of /kubepods/pod1/c1\n');
    expect(opened.storeFirst).toBe(true); // one content for every reader: into the page cache
    expect(filesystem.containerKeys()).toEqual(['/kubepods/pod1/c1']);
  });

  it('container-views tree: every view per container, nothing shared, mounted read-only as a page-cache session', () => {
    const { fs: filesystem, lookupPath, outcome, mounted } = harness({ tree: 'container-views' });
    expect(mounted().pageCache).toBe(true);
    expect(mounted().options).toMatch(/(^|,)ro(,|$)/);
    expect(mounted().options).toMatch(/(^|,)default_permissions(,|$)/);
    expect(outcome('lookup', 1, { name: 'proc' })).toBe(E.ENOENT);
    filesystem.addContainer('/c1');
    for (const p of VIEW_PATHS) expect(lookupPath(`${dirOf('/c1')}${p}`)).toBeGreaterThan(1);
    const kernel = lookupPath(`${dirOf('/c1')}/proc/sys`);
    expect(outcome('lookup', kernel, { name: 'kernel' })).toBe(E.ENOENT);
  });

  it('main tree mounts per-reader: no page-cache session, no default_permissions', () => {
    const { mounted } = harness();
    expect(mounted().pageCache).toBe(false);
    expect(mounted().options).not.toMatch(/default_permissions/);
  });

  it('gives a per-container control file the size of its latest content (shared files stay 0)', () => {
    const { fs: filesystem, open, request, lookupPath } = harness();
    filesystem.addContainer('/c1');
    const own = lookupPath(`${dirOf('/c1')}/proc/sys/kernel/container_stats_isolated`);
    const shared = lookupPath('/proc/meminfo');
    open(own);
    open(shared);
    expect(request('getattr', own).args[3]).toBe('content of /c1\n'.length);
    expect(request('getattr', shared).args[3]).toBe(0);
  });

  it('container-views: LOOKUP renders nothing and is valid 0 s; GETATTR hands native the current content, with a new mtime only when it changed', async () => {
    let memory = 'MemFree: 1 kB\n';
    let renders = 0;
    const { fs: filesystem, request, lookupPath, inodeContents } = harness({ tree: 'container-views' }, {
      read: () => {
        renders++;
        return Buffer.from(memory);
      },
    });
    filesystem.addContainer('/c1');
    const proc = lookupPath(`${dirOf('/c1')}/proc`);
    const entry = request('lookup', proc, { name: 'meminfo' }).args;
    const file = entry[0] as number;
    // Attach and repair look up every source: the kernel asks GETATTR before it reads.
    expect({ renders, size: entry[3], attrTimeout: entry[8], held: inodeContents.has(file) }).toEqual({ renders: 0, size: 0, attrTimeout: 0, held: false });
    const attr = (): { size: number; nsec: number; timeout: number } => {
      const args = request('getattr', file).args;
      return { size: args[3] as number, nsec: args[8] as number, timeout: args[7] as number };
    };
    const first = attr();
    expect(first.size).toBe(memory.length);
    expect(inodeContents.get(file)?.toString()).toBe(memory);
    expect(first.timeout).toBeLessThanOrEqual(0.1); // the kernel asks again within 100 ms of a read
    expect(attr().nsec).toBe(first.nsec); // unchanged: the kernel keeps its pages
    memory = 'MemFree: 123456 kB\n';
    // A version is kept at least as long as the kernel may use its attributes (one burst of
    // GETATTRs answers with one version).
    expect(attr().nsec).toBe(first.nsec);
    await new Promise((r) => setTimeout(r, 60));
    const changed = attr();
    expect(changed.nsec).not.toBe(first.nsec);
    expect(changed.size).toBe(memory.length);
    expect(inodeContents.get(file)?.toString()).toBe(memory);
  });

  it('container-views: a READ native could not answer gets the current content at its offset', () => {
    const { fs: filesystem, request, lookupPath } = harness({ tree: 'container-views' }, { read: () => Buffer.from('0123456789') });
    filesystem.addContainer('/c1');
    const file = lookupPath(`${dirOf('/c1')}/proc/stat`);
    expect((request('read', file, { offset: 4, size: 3 }).args[0] as Buffer).toString()).toBe('456');
    expect((request('read', file, { offset: 10, size: 3 }).args[0] as Buffer).length).toBe(0);
  });

  it('container-views: an error rendering the container (gone) is the answer to GETATTR', () => {
    const { fs: filesystem, outcome, lookupPath } = harness({ tree: 'container-views' }, { read: () => ({ errno: E.EIO }) });
    filesystem.addContainer('/c1');
    expect(outcome('getattr', lookupPath(`${dirOf('/c1')}/proc/meminfo`))).toBe(E.EIO);
  });

  it('container-views: a refresh (a switch changed) has the kernel ask every per-container file\'s attributes again', () => {
    const { fs: filesystem, lookupPath, invalidated } = harness({ tree: 'container-views' });
    filesystem.addContainer('/c1');
    filesystem.addContainer('/c2');
    const files = ['/c1', '/c2'].map((key) => lookupPath(`${dirOf(key)}/proc/meminfo`));
    filesystem.refreshContainerFiles();
    expect(invalidated).toEqual(expect.arrayContaining(files));
    expect(invalidated.length).toBe(2 * VIEW_PATHS.length);
  });

  it('main tree: a refresh does nothing (its files are rendered at every open)', () => {
    const { fs: filesystem, invalidated } = harness();
    filesystem.addContainer('/c1');
    filesystem.refreshContainerFiles();
    expect(invalidated).toEqual([]);
  });

  it('container-views: removing a subtree drops what native holds for its inodes', () => {
    const { fs: filesystem, lookupPath, inodeContents, outcome } = harness({ tree: 'container-views' });
    filesystem.addContainer('/c1');
    const file = lookupPath(`${dirOf('/c1')}/proc/meminfo`);
    outcome('getattr', file);
    expect(inodeContents.has(file)).toBe(true);
    filesystem.removeContainer('/c1');
    expect(inodeContents.has(file)).toBe(false);
    expect(outcome('getattr', file)).toBe(E.ENOENT);
  });

  it('never lets the kernel cache a name in a per-container subtree (a cgroup path can come back as another container)', () => {
    for (const tree of ['main', 'container-views'] as const) {
      const { fs: filesystem, request, lookupPath } = harness({ tree });
      filesystem.addContainer('/c1');
      const entryTimeout = (dir: number, name: string): unknown => request('lookup', dir, { name }).args[7];
      const containers = lookupPath('/containers');
      expect(entryTimeout(1, 'containers')).toBe(3600);
      expect(entryTimeout(containers, containerDirName('/c1'))).toBe(0);
      expect(entryTimeout(lookupPath(dirOf('/c1')), 'proc')).toBe(0);
      const leaf = tree === 'main' ? 'kernel' : 'meminfo';
      const parent = lookupPath(`${dirOf('/c1')}${tree === 'main' ? '/proc/sys' : '/proc'}`);
      expect(entryTimeout(parent, leaf)).toBe(0);
    }
    const shared = harness();
    expect(shared.request('lookup', 1, { name: 'proc' }).args[7]).toBe(3600); // shared names stay cached
  });

  it('refuses a key that is not a cgroup path and adds the same key once', () => {
    const { fs: filesystem, lookupPath } = harness();
    expect(filesystem.addContainer('relative/key')).toBe(false);
    filesystem.addContainer('/c1');
    const ino = lookupPath(`${dirOf('/c1')}/proc/sys/kernel/stats_isolated`);
    expect(filesystem.addContainer('/c1')).toBe(true);
    expect(lookupPath(`${dirOf('/c1')}/proc/sys/kernel/stats_isolated`)).toBe(ino);
    expect(filesystem.containerKeys()).toEqual(['/c1']);
  });

  it('removes the whole subtree (its inodes answer ENOENT), keeps open handles readable and never reuses inodes', () => {
    const { fs: filesystem, open, request, outcome, lookupPath } = harness();
    filesystem.addContainer('/c1');
    const containers = lookupPath('/containers');
    const dir = lookupPath(dirOf('/c1'));
    const file = lookupPath(`${dirOf('/c1')}/proc/sys/kernel/container_stats_isolated`);
    const { fh } = open(file);
    filesystem.removeContainer('/c1');
    expect(outcome('lookup', containers, { name: containerDirName('/c1') })).toBe(E.ENOENT);
    expect([outcome('getattr', dir), outcome('getattr', file)]).toEqual([E.ENOENT, E.ENOENT]);
    expect(request('readdir', containers).args[0]).toEqual(['.', '..']);
    expect(filesystem.containerKeys()).toEqual([]);
    expect((request('read', 0, { fh }).args[0] as Buffer).toString()).toBe('content of /c1\n');
    filesystem.addContainer('/c1');
    expect(lookupPath(`${dirOf('/c1')}/proc/sys/kernel/container_stats_isolated`)).toBeGreaterThan(file);
  });
});

describe('loading the addon', () => {
  it('refuses an addon that lacks an op code or request field TypeScript uses, naming it', () => {
    const complete = { ops: FAKE_OPS, requestFields: FAKE_FIELDS };
    expect(checkAddon(complete, 'x.node')).toBe(complete);
    const { read: _read, ...opsWithoutRead } = FAKE_OPS;
    expect(() => checkAddon({ ...complete, ops: opsWithoutRead }, 'x.node')).toThrow(NativeLoadError);
    expect(() => checkAddon({ ...complete, ops: opsWithoutRead }, 'x.node')).toThrow(/ops\.read/);
    expect(() => checkAddon({ ops: FAKE_OPS }, 'x.node')).toThrow(/requestFields\.id/);
    expect(() => checkAddon({}, 'x.node')).toThrow(/ops\.lookup/);
  });

  const built = path.join(nativeBuildDir(), 'isolfs_native.node');
  it.skipIf(!fs.existsSync(built))('the built addon exports every op code and request field, each distinct', () => {
    // biome-ignore lint/style/noCommonJs: a native addon can only be loaded with require.
    const addon = checkAddon(require(built), built);
    expect(new Set(FUSE_OP_NAMES.map((n) => addon.ops[n])).size).toBe(FUSE_OP_NAMES.length);
    expect(new Set(REQUEST_FIELD_NAMES.map((n) => addon.requestFields[n])).size).toBe(REQUEST_FIELD_NAMES.length);
  });
});
