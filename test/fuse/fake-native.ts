/**
 * A recording stand-in for the addon: IsolfsFilesystem's operations without root or FUSE. Its op
 * codes and request-header layout differ from the real addon's on purpose, so a test passes only
 * if the TypeScript side reads both from what the addon exports.
 */
import {
  FUSE_OP_NAMES, REQUEST_FIELD_NAMES, type FuseOpName, type FuseOps, type NativeAddon, type RawRequestHandler,
  type RequestFields,
} from '../../src/fuse/native';
import type { FileBackend } from '../../src/fuse/fileBackend';
import { IsolfsFilesystem, type FilesystemOptions } from '../../src/fuse/filesystem';

/** One answer given through the fake: which reply function, for which request id, with what. */
export interface Reply {
  kind: 'err' | 'entry' | 'attr' | 'open' | 'dir' | 'buf' | 'write' | 'poll';
  id: number;
  args: unknown[];
}

export const FAKE_OPS: FuseOps = Object.fromEntries(FUSE_OP_NAMES.map((name, i) => [name, 101 + i])) as FuseOps;
/** The fields in reverse order of REQUEST_FIELD_NAMES, two slots apart. */
export const FAKE_FIELDS: RequestFields = Object.fromEntries(
  REQUEST_FIELD_NAMES.map((name, i) => [name, 2 * (REQUEST_FIELD_NAMES.length - 1 - i) + 1]),
) as RequestFields;

export interface RequestExtra {
  name?: string;
  pid?: number;
  uid?: number;
  gid?: number;
  fh?: number;
  offset?: number;
  size?: number;
  flags?: number;
  data?: Buffer;
}

/** What a test reads of an OPEN reply. */
export interface OpenReply {
  fh: number;
  content: Buffer | undefined;
  storeFirst: boolean | undefined;
  freshOnRewind: boolean | undefined;
}

export function harness(options?: FilesystemOptions, backend?: Partial<FileBackend>) {
  const replies: Reply[] = [];
  const setContents: Array<{ fh: number; content: Buffer }> = [];
  /** Page-cache trees: what native holds per inode (the latest set: the fake publishes at once). */
  const inodeContents = new Map<number, Buffer>();
  const invalidated: number[] = [];
  /** Poll watches (watchPoll): fh -> the fd and whether an event is latched. */
  const watches = new Map<number, { fd: number; pending: boolean }>();
  let watchPollErrno = 0;
  let versions = 0;
  const lastContent = new Map<string, { bytes: Buffer; version: number }>();
  let header: Float64Array = new Float64Array(0);
  let mountOptions = '';
  let handler: RawRequestHandler = () => undefined;
  const record = (kind: Reply['kind']) => (id: number, ...args: unknown[]) => { replies.push({ kind, id, args }); };
  const native = {
    ops: FAKE_OPS,
    requestFields: FAKE_FIELDS,
    mount: (...args: Parameters<NativeAddon['mount']>) => {
      header = args[3];
      handler = args[4];
      mountedPageCache = args[5];
      mountOptions = args[1];
      return {};
    },
    unmount: () => undefined,
    replyErr: record('err'), replyEntry: record('entry'), replyAttr: record('attr'), replyOpen: record('open'),
    replyDir: record('dir'), replyBuf: record('buf'), replyWrite: record('write'), replyPoll: record('poll'),
    watchPoll: (_s: unknown, fh: number, fd: number) => {
      if (watchPollErrno === 0) watches.set(fh, { fd, pending: false });
      return watchPollErrno;
    },
    unwatchPoll: (_s: unknown, fh: number) => watches.delete(fh),
    takePollEvent: (_s: unknown, fh: number) => {
      const watch = watches.get(fh);
      if (!watch?.pending) return false;
      watch.pending = false;
      return true;
    },
    setContent: (_s: unknown, fh: number, content: Buffer) => { setContents.push({ fh, content }); },
    setInodeContent: (_s: unknown, ino: number, content: Buffer) => { inodeContents.set(ino, Buffer.from(content)); },
    dropInodeContent: (_s: unknown, ino: number) => { inodeContents.delete(ino); },
    invalidateAttributes: (_s: unknown, ino: number) => { invalidated.push(ino); return 0; },
  } as unknown as NativeAddon;
  const fullBackend: FileBackend = {
    read: ({ caller, container }) => Buffer.from(`content of ${container ?? `uid ${caller.uid}`}\n`),
    write: ({ data }) => data.length,
    // As the real backend: the read content, with a version that changes only with the bytes.
    currentContent: ({ file, container }) => {
      const bytes = fullBackend.read({ file, container, caller: { pid: 0, uid: 0, gid: 0 } });
      if (!Buffer.isBuffer(bytes)) return bytes;
      const key = `${container}${file}`;
      const last = lastContent.get(key);
      if (last?.bytes.equals(bytes)) return last;
      const current = { bytes, version: ++versions };
      lastContent.set(key, current);
      return current;
    },
    ...backend,
  };
  const fs = new IsolfsFilesystem(native, fullBackend, options);
  let mountedPageCache: boolean | undefined;
  fs.mount('/mnt', 'thread');
  let nextId = 1;

  /** Fills the header as the addon would and calls the handler; returns the answer. */
  /** `op`: a name, or a raw code (to send one the addon never exported). */
  const call = (op: FuseOpName | number, ino: number, extra: RequestExtra = {}, id = nextId++): Reply | undefined => {
    const values: Record<string, number> = {
      id, op: typeof op === 'number' ? op : FAKE_OPS[op], ino, pid: extra.pid ?? 1000, uid: extra.uid ?? 65534, gid: extra.gid ?? 65534,
      fh: extra.fh ?? 0, offset: extra.offset ?? 0, size: extra.size ?? 4096, flags: extra.flags ?? 0,
    };
    header.fill(Number.NaN);
    for (const name of REQUEST_FIELD_NAMES) header[FAKE_FIELDS[name]] = values[name];
    handler(extra.name, extra.data);
    return replies.find((r) => r.id === id);
  };
  const request = (op: FuseOpName | number, ino: number, extra: RequestExtra = {}): Reply => {
    const reply = call(op, ino, extra);
    if (!reply) throw new Error(`no reply to ${String(op)}`);
    return reply;
  };
  /** The errno of an err reply, or the kind of any other reply. */
  const outcome = (op: FuseOpName | number, ino: number, extra: RequestExtra = {}): number | string => {
    const reply = request(op, ino, extra);
    return reply.kind === 'err' ? (reply.args[0] as number) : reply.kind;
  };
  const lookupPath = (p: string): number =>
    p.split('/').filter(Boolean).reduce((ino, name) => request('lookup', ino, { name }).args[0] as number, 1);
  const open = (ino: number, extra: RequestExtra = {}): OpenReply => {
    const reply = request('open', ino, extra);
    if (reply.kind !== 'open') throw new Error(`open answered ${reply.kind} ${String(reply.args[0])}`);
    const [fh, , , , content, storeFirst, freshOnRewind] = reply.args as [number, boolean, boolean, boolean, Buffer?, boolean?, boolean?];
    return { fh, content, storeFirst, freshOnRewind };
  };
  /** RELEASE is a notification: native answered the kernel already (id -1), JS must not reply. */
  const release = (fh: number): void => { call('release', 0, { fh }, -1); };
  return {
    fs, native, call, request, outcome, lookupPath, open, release, replies, setContents, inodeContents, invalidated, watches,
    /** The watched fd of `fh` fires (what libuv's callback latches). */
    fire: (fh: number) => { const watch = watches.get(fh); if (watch) watch.pending = true; },
    failWatches: (errno: number) => { watchPollErrno = errno; },
    mounted: () => ({ pageCache: mountedPageCache, options: mountOptions }),
  };
}
