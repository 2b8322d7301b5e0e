/**
 * What an OCI hook request does (hookServer.ts): attach one container now, through the attach
 * manager's attachNow (the plan, apply and bookkeeping of discovery, never two at once in one
 * namespace), under the container's rootfs when the runtime has not yet switched to it
 * (createRuntime runs before pivot_root; see native/src/hook.c).
 *
 * The same rules as discovery: only while the host switch is on, only a container whose cgroup
 * starts with an --attach prefix, nothing created inside the container.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AttachOutcome, HookAttachRequest } from './hookServer';
import type { AttachManager, AttachNowResult } from './manager';

export interface HookAttachOptions {
  /** The manager's attachNow: the same plan, apply and bookkeeping as discovery, one at a time per namespace. */
  manager: Pick<AttachManager, 'attachNow'>;
  procRoot: string;
}

const SKIPPED_BECAUSE: Record<Extract<AttachNowResult, { outcome: 'skipped' }>['reason'], string> = {
  'process-gone': 'the process is gone',
  'own-namespace': "the process is in the daemon's own mount namespace",
  'not-under-prefix': 'its cgroup is not under an --attach prefix',
  'not-attaching': 'kernel.stats_isolated is 0',
};

/** A bundle's config.json is a few KiB (a seccomp profile makes it tens): far more is not one. */
const CONFIG_MAX_BYTES = 4 * 1024 * 1024;

export async function attachForHook(options: HookAttachOptions, request: HookAttachRequest): Promise<AttachOutcome> {
  const { pid } = request;
  // The bundle is a path in the runtime's namespaces: read it through the hook's root.
  const rootfs = await readRootfs(options.procRoot, request.hookPid ?? pid, request.bundle);
  const root = await containerRoot(options.procRoot, pid, rootfs);
  const done = await options.manager.attachNow(pid, { root });
  if (done.outcome === 'skipped') return { result: 'skipped', reason: `pid ${pid}: ${SKIPPED_BECAUSE[done.reason]}` };
  if (done.outcome === 'failed') return { result: 'failed', reason: done.error };
  if (done.failed.length > 0) return { result: 'failed', reason: done.failed.map((f) => `${f.target}: ${f.errno} ${f.message}`).join('; ') };
  const files = done.attached.map((target) => (root === '/' ? target : `/${path.posix.relative(root, target)}`));
  return { result: 'attached', container: done.container, files };
}

/** The rootfs path (runtime's view) from the bundle's config.json: root.path, relative to the bundle or absolute. */
async function readRootfs(procRoot: string, viaPid: number, bundle: string): Promise<string> {
  const file = path.join(procRoot, String(viaPid), 'root', bundle, 'config.json');
  const handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  let text: string;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${bundle}/config.json is not a regular file`);
    const buffer = Buffer.alloc(Math.min(stat.size, CONFIG_MAX_BYTES) + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > CONFIG_MAX_BYTES) throw new Error(`${bundle}/config.json is larger than ${CONFIG_MAX_BYTES} bytes`);
    text = buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
  const rootPath = (JSON.parse(text) as { root?: { path?: unknown } }).root?.path;
  if (typeof rootPath !== 'string' || rootPath === '' || rootPath.includes('\0')) throw new Error(`${bundle}/config.json has no root.path`);
  return path.posix.resolve(bundle, rootPath);
}

/**
 * Where the container's / is in the process's root: its rootfs path while the runtime has not
 * switched to it (the rootfs is then a directory other than the root), "/" once it has (the
 * rootfs path no longer exists inside, or is the root itself).
 */
async function containerRoot(procRoot: string, pid: number, rootfs: string): Promise<string> {
  const processRoot = path.join(procRoot, String(pid), 'root');
  const [rootStat, rootfsStat] = await Promise.all([
    fs.promises.stat(processRoot),
    fs.promises.stat(path.join(processRoot, rootfs)).catch(() => null),
  ]);
  if (rootfsStat === null || (rootfsStat.dev === rootStat.dev && rootfsStat.ino === rootStat.ino)) return '/';
  return rootfs;
}
