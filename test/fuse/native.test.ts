/**
 * The addon obeys the rule TypeScript sets per handle at OPEN (freshOnRewind), on a real mount
 * driven by a minimal handler instead of IsolfsFilesystem. Needs root and /dev/fuse.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FuseRequest, loadNative, type LoopMode, type NativeAddon, type NativeSession } from '../../src/fuse/native';

const CAN_MOUNT = process.getuid?.() === 0 && fs.existsSync('/dev/fuse');
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
/** Inode of the file opened with freshOnRewind true, and of the one opened with false. */
const FRESH_INO = 2;
const KEPT_INO = 3;
const NAMES: Record<string, number> = { fresh: FRESH_INO, kept: KEPT_INO };

/** Reads 1 byte, then the whole file again from offset 0, in a child (the main thread serves). */
function readOneByteThenRewind(file: string): Promise<string> {
  const code = 'import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY)\nos.read(fd,1)\nsys.stdout.write(os.pread(fd,64,0).decode())';
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', code, file], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

describe.skipIf(!CAN_MOUNT).each<LoopMode>(['poll', 'thread'])('the content table (%s loop)', (loop) => {
  let native: NativeAddon;
  let session: NativeSession;
  let mountpoint: string;
  /** The READs that reached JS, as "ino@offset". */
  const readsInJs: string[] = [];

  beforeAll(() => {
    native = loadNative();
    mountpoint = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-native-'));
    const req = new FuseRequest(native.requestFields);
    const { ops } = native;
    let nextFh = 1;
    const attrs = (ino: number): [number, number, number, number, number, number, number] =>
      ino === 1 ? [1, S_IFDIR | 0o555, 2, 0, 0, 0, 0] : [ino, S_IFREG | 0o444, 1, 0, 0, 0, 0];
    const handler = (name: string | undefined): void => {
      const id = req.id;
      switch (req.op) {
        case ops.lookup: {
          const ino = req.ino === 1 ? NAMES[name ?? ''] : undefined;
          if (ino) native.replyEntry(id, ...attrs(ino), 0, 0);
          else native.replyErr(id, os.constants.errno.ENOENT);
          break;
        }
        case ops.getattr: native.replyAttr(id, ...attrs(req.ino), 0); break;
        case ops.open: native.replyOpen(id, nextFh++, true, false, false, Buffer.from('abc'), false, req.ino === FRESH_INO); break;
        case ops.read:
          readsInJs.push(`${req.ino}@${req.offset}`);
          native.setContent(session, req.fh, Buffer.from('xyz'));
          native.replyBuf(id, Buffer.from('xyz').subarray(req.offset, req.offset + req.size));
          break;
        case ops.release: break;
        default: native.replyErr(id, os.constants.errno.ENOSYS);
      }
    };
    session = native.mount(mountpoint, 'fsname=isolfs-native-test,subtype=isolfs', loop, req.header, handler);
  });

  afterAll(() => {
    if (session) native.unmount(session);
    fs.rmSync(mountpoint, { recursive: true, force: true });
  });

  it('sends a rewind to offset 0 to JS on a freshOnRewind handle, which then reads the fresh content', async () => {
    readsInJs.length = 0;
    expect(await readOneByteThenRewind(path.join(mountpoint, 'fresh'))).toBe('xyz');
    expect(readsInJs).toEqual([`${FRESH_INO}@0`]);
  });

  it('serves a rewind to offset 0 from its copy on a handle opened without freshOnRewind', async () => {
    readsInJs.length = 0;
    expect(await readOneByteThenRewind(path.join(mountpoint, 'kept'))).toBe('abc');
    expect(readsInJs).toEqual([]);
  });

  it('refuses a request header that is not a Float64Array of every field', () => {
    expect(() => native.mount(mountpoint, '', loop, new Float64Array(1), () => undefined)).toThrow(TypeError);
  });
});
