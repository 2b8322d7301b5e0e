/** Names the FUSE tree gives containers and its own mounts. */
import { constants as osConstants } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  IsolfsFilesystem, containerDirName, containerFilePath, mountSourceName, type FileBackend, type FilesystemOptions,
} from '../../src/fuse/filesystem';
import { FuseOp, type NativeAddon, type RawRequestHandler } from '../../src/fuse/native';

describe('containerDirName', () => {
  it('percent-encodes a cgroup path into one name that decodes back to it', () => {
    const key = '/kubepods/burstable/pod1b2c/0123abcd';
    const name = containerDirName(key);
    expect(name).toBe('%2Fkubepods%2Fburstable%2Fpod1b2c%2F0123abcd');
    expect(name).not.toContain('/');
    expect(decodeURIComponent(name)).toBe(key);
  });

  it('cannot be made to climb out or split, whatever the cgroup is called', () => {
    for (const key of ['/..', '/../../etc', '/a/./b', '/with space/and%percent', '/x:y,z']) {
      const name = containerDirName(key);
      expect(name).not.toMatch(/[/\0]/);
      expect(name === '.' || name === '..').toBe(false);
      expect(decodeURIComponent(name)).toBe(key);
    }
  });

  it('hashes keys whose encoding would exceed NAME_MAX, distinctly and stably', () => {
    const a = `/kubelet.slice/${'a'.repeat(250)}`;
    const b = `/kubelet.slice/${'a'.repeat(249)}b`;
    expect(containerDirName(a)).toMatch(/^sha256-[0-9a-f]{64}$/);
    expect(containerDirName(a)).toBe(containerDirName(a));
    expect(containerDirName(a)).not.toBe(containerDirName(b));
    // Up to the limit the name stays readable.
    const fits = `/${'c'.repeat(252)}`; // "%2F" + 252 = 255 bytes
    expect(containerDirName(fits)).toBe(`%2F${'c'.repeat(252)}`);
    expect(containerDirName(`${fits}c`)).toMatch(/^sha256-/);
  });

  it('places a served file under /containers/<name>', () => {
    expect(containerFilePath('/k/p', '/proc/vmstat')).toBe('/containers/%2Fk%2Fp/proc/vmstat');
  });
});

describe('mountSourceName', () => {
  it('names the mountpoint, or a hash of it when the path would need escaping in mount options', () => {
    expect(mountSourceName('/var/lib/isolfs/mnt')).toBe('isolfs:/var/lib/isolfs/mnt');
    expect(mountSourceName('/tmp/a,b')).toMatch(/^isolfs:sha256-[0-9a-f]{32}$/);
    expect(mountSourceName('/tmp/a b')).not.toBe(mountSourceName('/tmp/a,b'));
  });
});

/** The FUSE layer's decisions without a mount: a recording stand-in for the addon. */
describe('IsolfsFilesystem decisions', () => {
  const E = osConstants.errno;
  type Reply = [string, ...unknown[]];
  function harness(options?: FilesystemOptions) {
    const replies: Reply[] = [];
    let handler: RawRequestHandler = () => {};
    const record = (name: string) => (...args: unknown[]) => { replies.push([name, ...args]); };
    const native = {
      mount: (_m: string, _o: string, _l: string, h: RawRequestHandler) => { handler = h; return {}; },
      replyErr: record('err'), replyEntry: record('entry'), replyAttr: record('attr'), replyOpen: record('open'),
      replyDir: record('dir'), replyBuf: record('buf'), replyWrite: record('write'), setContent: () => {},
    } as unknown as NativeAddon;
    const backend: FileBackend = { read: (_p, _c, container) => Buffer.from(`content of ${container ?? 'the reader'}\n`), write: () => 0 };
    const fs = new IsolfsFilesystem(native, backend, options);
    fs.mount('/mnt', 'thread');
    let nextId = 1;
    const request = (op: FuseOp, ino: number, extra: { name?: string; uid?: number; offset?: number; size?: number; flags?: number } = {}): Reply => {
      const id = nextId++;
      handler(id, op, ino, 1000, extra.uid ?? 65534, 65534, extra.name, 0, extra.offset ?? 0, extra.size ?? 4096, undefined, extra.flags ?? 0);
      const reply = replies.find((r) => r[1] === id);
      if (!reply) throw new Error(`no reply to ${op}`);
      return reply;
    };
    const lookupPath = (p: string): number => p.split('/').filter(Boolean).reduce((ino, name) => request(FuseOp.Lookup, ino, { name })[2] as number, 1);
    // RELEASE is a notification: native answered the kernel already (id -1), JS must not reply.
    const release = (fh: number): void => handler(-1, FuseOp.Release, 0, 1000, 0, 0, undefined, fh, 0, 0, undefined, 0);
    return { fs, request, lookupPath, release, replies };
  }

  it('SETATTR: mode/owner EPERM, size EACCES (control files: root only, a no-op), times EPERM unless root', () => {
    const { request, lookupPath } = harness();
    const view = lookupPath('/proc/meminfo');
    const control = lookupPath('/proc/sys/kernel/stats_isolated');
    const errnoOf = (r: Reply): unknown => (r[0] === 'err' ? r[2] : 'attr');
    expect(errnoOf(request(FuseOp.Setattr, view, { flags: 1 }))).toBe(E.EPERM); // chmod
    expect(errnoOf(request(FuseOp.Setattr, view, { flags: 2, uid: 0 }))).toBe(E.EPERM); // chown, even root
    expect(errnoOf(request(FuseOp.Setattr, view, { flags: 8, uid: 0 }))).toBe(E.EACCES); // truncate a view
    expect(errnoOf(request(FuseOp.Setattr, control, { flags: 8 }))).toBe(E.EACCES);
    expect(errnoOf(request(FuseOp.Setattr, control, { flags: 8, uid: 0 }))).toBe('attr');
    expect(errnoOf(request(FuseOp.Setattr, view, { flags: (1 << 7) | (1 << 8) }))).toBe(E.EPERM); // touch
    expect(errnoOf(request(FuseOp.Setattr, view, { flags: (1 << 7) | (1 << 8), uid: 0 }))).toBe('attr');
  });

  it('ACCESS: W_OK only on control files for root, X_OK never on files, anything else granted', () => {
    const { request, lookupPath } = harness();
    const view = lookupPath('/proc/meminfo');
    const control = lookupPath('/proc/sys/kernel/stats_isolated');
    const proc = lookupPath('/proc');
    const answer = (ino: number, mask: number, uid = 65534): unknown => request(FuseOp.Access, ino, { flags: mask, uid })[2];
    expect([answer(view, 4), answer(view, 2), answer(view, 2, 0), answer(view, 1)]).toEqual([0, E.EACCES, E.EACCES, E.EACCES]);
    expect([answer(control, 2), answer(control, 2, 0), answer(control, 6, 0)]).toEqual([E.EACCES, 0, 0]);
    expect([answer(proc, 1), answer(proc, 5), answer(proc, 2, 0), answer(proc, 0)]).toEqual([0, 0, E.EACCES, 0]);
  });

  it('READDIR at or past the last entry (or at an offset no index has) lists nothing', () => {
    const { request, lookupPath } = harness();
    const proc = lookupPath('/proc');
    const names = (offset: number): unknown => request(FuseOp.Readdir, proc, { offset })[2];
    expect((names(0) as string[]).slice(0, 2)).toEqual(['.', '..']);
    const count = (names(0) as string[]).length;
    for (const offset of [count, count + 1, 2 ** 32 + 1, 2 ** 62, -1, NaN]) expect(names(offset)).toEqual([]);
  });

  it('OPEN: the page-cache store only for per-container files, and ENFILE past maxOpenHandles, told to onLimit once', () => {
    const refused: number[] = [];
    const { fs, request, lookupPath, release, replies } = harness({ maxOpenHandles: 3, onLimit: (n) => refused.push(n) });
    fs.addContainer('/c1');
    const shared = lookupPath('/proc/meminfo');
    const own = lookupPath(`/containers/${containerDirName('/c1')}/proc/meminfo`);
    const sharedOpen = request(FuseOp.Open, shared);
    expect(sharedOpen[0]).toBe('open');
    expect(sharedOpen[7]).toBe(false); // storeFirst
    const ownOpen = request(FuseOp.Open, own);
    expect((ownOpen[6] as Buffer).toString()).toBe('content of /c1\n');
    expect(ownOpen[7]).toBe(true);
    expect(request(FuseOp.Getattr, own)[5]).toBe('content of /c1\n'.length); // its size, as stored
    expect(request(FuseOp.Getattr, shared)[5]).toBe(0);
    request(FuseOp.Open, shared);
    expect(fs.openHandles).toBe(3);
    expect(request(FuseOp.Open, shared)[2]).toBe(E.ENFILE);
    expect(request(FuseOp.Open, own)[2]).toBe(E.ENFILE);
    expect(refused).toEqual([1]); // the second refusal falls in the same 10 s
    const repliesBefore = replies.length;
    release(0); // fh 0: no such handle, a no-op
    expect(fs.openHandles).toBe(3);
    release(1);
    expect(fs.openHandles).toBe(2);
    expect(replies.length).toBe(repliesBefore); // nothing answered from JS
    expect(request(FuseOp.Open, shared)[0]).toBe('open'); // room again
  });
});
