/**
 * containerd for the conformance suite: Debian's containerd, started by the suite with its own
 * config, root, state and sockets under /var/lib and /run/isolfs-conformance (the CRI plugin off:
 * no CNI here), so no other containerd on the machine is seen or touched. Containers are made
 * with `ctr run --rootfs` from the conformance image's tar unpacked once (read-only), with a
 * kubepods-like cgroup path, and are killed and deleted, then containerd stopped, afterwards.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { nativeBuildDir } from '../../src/fuse/native';
import { PROJECT_ROOT } from '../helpers/daemon';
import type { ConformanceImage } from './image';
import type { Container, ExecResult } from './podman';
import { FIRST_READ_FILE, firstInstruction } from './firstReads';

const CONTAINERD_ROOT = '/var/lib/isolfs-conformance/containerd';
const RUN_DIR = '/run/isolfs-conformance';
const SOCKET = path.join(RUN_DIR, 'containerd.sock');
const NAMESPACE = 'isolfs-conformance';

export function ctr(args: string[], timeoutMs = 60_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile('ctr', ['--address', SOCKET, '--namespace', NAMESPACE, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ stdout, stderr, code: error ? (typeof error.code === 'number' ? error.code : -1) : 0 });
    });
  });
}

export interface Containerd {
  process: ChildProcess;
  stop: () => Promise<void>;
}

export async function startContainerd(): Promise<Containerd> {
  fs.mkdirSync(RUN_DIR, { recursive: true });
  const config = path.join(RUN_DIR, 'containerd.toml');
  fs.writeFileSync(config, [
    'version = 2',
    `root = "${CONTAINERD_ROOT}"`,
    `state = "${path.join(RUN_DIR, 'containerd')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${SOCKET}"`,
    '[ttrpc]',
    `  address = "${SOCKET}.ttrpc"`,
    '',
  ].join('\n'));
  const log: string[] = [];
  const child = spawn('containerd', ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const deadline = Date.now() + 20_000;
  while ((await ctr(['version'], 5000)).code !== 0) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`containerd did not start: ${log.join('').slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  // Answered, but not by ours: a containerd a killed run left serves the socket.
  await new Promise((r) => setTimeout(r, 200));
  if (child.exitCode !== null) throw new Error(`another containerd serves ${SOCKET} (left by a killed run?): ${log.join('').slice(-1000)}`);
  return {
    process: child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The image's tar unpacked once beside containerd's root (built aside, renamed into place). */
export function unpackedRootfs(image: ConformanceImage): string {
  const dir = path.join(path.dirname(CONTAINERD_ROOT), `rootfs-${path.basename(image.tarPath, '.tar')}`);
  if (fs.existsSync(dir)) return dir;
  const building = `${dir}.building-${process.pid}`;
  fs.mkdirSync(building, { recursive: true });
  try {
    execFileSync('tar', ['-xf', image.tarPath, '-C', building], { stdio: 'inherit', timeout: 300_000 });
    fs.renameSync(building, dir);
    // Root file systems of older package lists go.
    for (const name of fs.readdirSync(path.dirname(dir))) {
      const other = path.join(path.dirname(dir), name);
      if (name.startsWith('rootfs-conformance-image-') && other !== dir && !name.includes('.building-')) fs.rmSync(other, { recursive: true, force: true });
    }
  } catch (error) {
    fs.rmSync(building, { recursive: true, force: true });
    throw error;
  }
  return dir;
}

export interface CtrOptions {
  id: string;
  rootfs: string;
  /** cgroupsPath, absolute (cgroupfs). */
  cgroup: string;
  memoryBytes: number;
  cpus?: number;
  /** [source, destination] read-only binds. */
  binds: [string, string][];
  /** A spec with the OCI hook (hookSpec): the container is made from it (`ctr run --config`), as the CRI plugin does from base_runtime_spec. */
  hookSpec?: string;
}

const PATH_ENV = 'PATH=/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * containerd's default spec with the isolfs hook, made by the shipped
 * deploy/oci-hooks/make-containerd-base-spec.sh from the shipped containerd-hooks.json (pointed
 * at the built hook and this daemon's socket): the file a node's base_runtime_spec names.
 */
export function makeHookSpec(hookSocket: string): string {
  const hook = path.join(nativeBuildDir(), 'isolfs-oci-hook');
  if (!fs.existsSync(hook)) throw new Error(`${hook} is not built (npm run install)`);
  const shipped = fs.readFileSync(path.join(PROJECT_ROOT, 'deploy', 'oci-hooks', 'containerd-hooks.json'), 'utf8');
  const hooksJson = path.join(RUN_DIR, 'containerd-hooks.json');
  fs.writeFileSync(hooksJson, shipped.replace('/opt/isolfs/bin/isolfs-oci-hook', hook).replace('/run/isolfs-hook/hook.sock', hookSocket));
  const out = path.join(RUN_DIR, 'isolfs-base-spec.json');
  execFileSync(path.join(PROJECT_ROOT, 'deploy', 'oci-hooks', 'make-containerd-base-spec.sh'), [out], {
    env: { ...process.env, ISOLFS_HOOKS_JSON: hooksJson, CONTAINERD_ADDRESS: SOCKET, CONTAINERD_NAMESPACE: NAMESPACE },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return out;
}

/** The base spec filled in for one container: what the CRI plugin adds to base_runtime_spec. */
function specFor(options: CtrOptions, base: string, args: string[]): string {
  const spec = JSON.parse(fs.readFileSync(base, 'utf8'));
  spec.root = { path: options.rootfs, readonly: true };
  spec.process.args = args;
  spec.process.env = [PATH_ENV];
  spec.hostname = options.id.slice(0, 63);
  spec.mounts.push(...options.binds.map(([source, destination]) => ({ destination, type: 'bind', source, options: ['rbind', 'ro'] })));
  spec.linux.cgroupsPath = options.cgroup;
  spec.linux.resources = {
    ...spec.linux.resources,
    memory: { limit: options.memoryBytes },
    ...(options.cpus === undefined ? {} : { cpu: { quota: options.cpus * 100_000, period: 100_000 } }),
  };
  const file = path.join(RUN_DIR, `${options.id}.json`);
  fs.writeFileSync(file, JSON.stringify(spec));
  return file;
}

/**
 * `ctr run` with the container's arguments: from the hook spec (a file per container, removed
 * once ctr returns: containerd keeps its own copy), or from ctr's own flags.
 */
async function ctrRun(flags: string[], options: CtrOptions, args: string[]): Promise<ExecResult> {
  if (options.hookSpec === undefined) return await ctr(['run', ...flags, ...runArgs(options, args)]);
  const spec = specFor(options, options.hookSpec, args);
  try {
    return await ctr(['run', ...flags, '--config', spec, options.id]);
  } finally {
    fs.rmSync(spec, { force: true });
  }
}

function runArgs(options: CtrOptions, args: string[]): string[] {
  const mounts = options.binds.flatMap(([src, dst]) => ['--mount', `type=bind,src=${src},dst=${dst},options=rbind:ro`]);
  const cpus = options.cpus === undefined ? [] : ['--cpus', String(options.cpus)];
  return [
    '--rootfs', '--read-only', '--env', PATH_ENV, '--cgroup', options.cgroup, '--memory-limit', String(options.memoryBytes),
    ...cpus, ...mounts, options.rootfs, options.id, ...args,
  ];
}

/** One short container in the foreground (`ctr run --rm`): its init prints its first reads and exits. */
export function runCtrFirstReads(options: CtrOptions): Promise<ExecResult> {
  return ctrRun(['--rm'], options, ['sh', '-c', firstInstruction('-', 'true')]);
}

export async function runCtr(options: CtrOptions): Promise<Container> {
  const remove = async (): Promise<void> => {
    await ctr(['task', 'kill', '-s', 'KILL', options.id]);
    await ctr(['task', 'rm', '-f', options.id]);
    await ctr(['container', 'rm', options.id]);
  };
  // The init's first instructions read the three files into /dev/shm (the root is read-only).
  const run = await ctrRun(['-d'], options, ['sh', '-c', firstInstruction(FIRST_READ_FILE, 'exec sleep infinity')]);
  const startedAtMs = Date.now();
  if (run.code !== 0) {
    await remove();
    throw new Error(`ctr run failed (${run.code}): ${run.stderr}`);
  }
  let execs = 0;
  return {
    name: options.id,
    startedAtMs,
    sh: (command, timeoutMs = 30_000) => {
      execs += 1;
      return ctr(['task', 'exec', '--exec-id', `e${execs}`, options.id, 'sh', '-c', command], timeoutMs);
    },
    screen: () => Promise.reject(new Error('no terminal programs under ctr here')),
    remove,
  };
}
