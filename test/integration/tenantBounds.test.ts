/**
 * Node-wide pools one tenant must not drain: open files (--max-open-files) and PSI triggers
 * (1024 in all). Each tenant has its own share, counted per attached container, so a container
 * that makes child cgroups (a delegated subtree) and reads from each of them still has one
 * share: container A's readers, spread over 34 child cgroups, take their share and are refused
 * past it (ENFILE, EMFILE, a log line naming A), while container B still opens files and writes
 * a trigger. Before per-tenant shares, A's children took the whole pool and B got ENFILE/EMFILE.
 * A share is the opener's, also through another container's per-container copy (before: A
 * opening B's copy took B's share, and B's own opens got ENFILE/EMFILE).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { cgroupDirsOf, createTestCgroup, makeChildCgroup, removeChildCgroups, type TestCgroup } from '../helpers/cgroups';
import { startContainer, type RunningContainer } from '../helpers/container';
import { until } from '../helpers/procText';

const MAX_OPEN_FILES = 1200;
const PER_CONTAINER = 48;
/** More children than 1024 / 32: keyed per cgroup, they would take every trigger of the node. */
const CHILDREN = 34;

/**
 * A reader: joins the cgroup directories given, opens FILE up to COUNT times (writing TRIGGER
 * to each when given), prints how many it holds and the first errno, then holds them.
 */
const HOLDER = `
import os, sys, time
path, count, trigger = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for procs in sys.argv[4:]:
    with open(procs, 'w') as f: f.write(str(os.getpid()))
fds, err = [], 0
for _ in range(count):
    try:
        fd = os.open(path, os.O_RDWR if trigger else os.O_RDONLY)
    except OSError as e:
        err = e.errno; break
    if trigger:
        try:
            os.write(fd, trigger.encode())
        except OSError as e:
            os.close(fd); err = e.errno; break
    fds.append(fd)
print(len(fds), err, flush=True)
time.sleep(600)
`;

interface Holder { process: ChildProcess; held: number; errno: number }

/** Starts a holder and waits for its count. */
function hold(file: string, count: number, trigger: string, procsFiles: string[]): Promise<Holder> {
  const child = spawn('python3', ['-c', HOLDER, file, String(count), trigger, ...procsFiles], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      const [held, errno] = line.trim().split(' ').map(Number);
      resolve({ process: child, held, errno });
    });
    child.once('exit', (code) => reject(new Error(`holder exited (${code}) before it reported`)));
  });
}

describe('per-container shares of the open files and the PSI triggers', () => {
  let daemon: DaemonHandle;
  let a: TestCgroup;
  let b: TestCgroup;
  const containers: RunningContainer[] = [];
  const holders: Holder[] = [];
  const childDirs: string[] = [];

  beforeAll(async () => {
    a = createTestCgroup('tenantA', { unified: true });
    b = createTestCgroup('tenantB', { unified: true });
    if (!a.dirs.has('unified')) throw new Error('no cgroup2 (unified) hierarchy here: PSI triggers cannot be tested');
    const prefix = path.posix.join(path.posix.dirname(a.key), 'isolfs-test-tenant');
    daemon = await startDaemon({ args: ['--attach', prefix, '--max-open-files', String(MAX_OPEN_FILES), '--max-open-files-per-container', String(PER_CONTAINER)] });
    for (const cg of [a, b]) containers.push(startContainer(cg, { mountpoint: null }, 'sleep 600'));
    const attached = (cg: TestCgroup) => fs.existsSync(path.join(daemon.mountpoint, 'containers', encodeURIComponent(cg.key)));
    await until('containers A and B attached', () => attached(a) && attached(b), Boolean, 20_000);
    for (let i = 0; i < CHILDREN; i++) childDirs.push(...makeChildCgroup(a, `child${i}`));
  }, 60_000);

  afterAll(async () => {
    for (const h of holders) h.process.kill('SIGKILL');
    await Promise.all(holders.map((h) => (h.process.exitCode === null && h.process.signalCode === null ? new Promise((r) => h.process.once('exit', r)) : null)));
    await Promise.all(containers.map((c) => c.stop()));
    await daemon?.cleanup();
    await removeChildCgroups(childDirs);
    await a?.remove();
    await b?.remove();
  }, 60_000);

  /** Holders in the first `n` children of A, each trying `count`. */
  async function fromChildren(n: number, file: string, count: number, trigger: string): Promise<Holder[]> {
    const started: Holder[] = [];
    for (let i = 0; i < n; i++) {
      const procsFiles = cgroupDirsOf(a).map((d) => path.join(d, `child${i}`, 'cgroup.procs'));
      started.push(await hold(file, count, trigger, procsFiles));
    }
    holders.push(...started);
    return started;
  }

  it('open files: A\'s children together hold its share (ENFILE past it, logged); B still opens', async () => {
    const meminfo = path.join(daemon.mountpoint, 'proc/meminfo');
    const fromA = await fromChildren(3, meminfo, MAX_OPEN_FILES / 2, '');
    const heldByA = fromA.reduce((sum, h) => sum + h.held, 0);
    expect(heldByA).toBe(PER_CONTAINER);
    expect(fromA.at(-1)?.errno).toBe(23); // ENFILE
    const fromB = await hold(meminfo, 10, '', b.procsFiles);
    holders.push(fromB);
    expect(fromB).toMatchObject({ held: 10, errno: 0 });
    await until('a log line naming A', () => daemon.logs.some((l) => l.includes("a container's open-file limit reached") && l.includes(JSON.stringify(a.key))), Boolean, 5000);
    for (const h of [...fromA, fromB]) h.process.kill('SIGKILL');
  }, 60_000);

  it('PSI triggers: A\'s 34 children together get 32 (EMFILE past them, logged); B still writes one', async () => {
    const cpu = path.join(daemon.mountpoint, 'proc/pressure/cpu');
    const fromA = await fromChildren(CHILDREN, cpu, 32, 'some 150000 2000000\n');
    const heldByA = fromA.reduce((sum, h) => sum + h.held, 0);
    expect(heldByA, JSON.stringify(fromA.map((h) => [h.held, h.errno]))).toBe(32);
    expect(fromA.at(-1)?.errno).toBe(24); // EMFILE
    const fromB = await hold(cpu, 1, 'some 150000 2000000\n', b.procsFiles);
    holders.push(fromB);
    expect(fromB).toMatchObject({ held: 1, errno: 0 });
    await until('a log line naming A', () => daemon.logs.some((l) => l.includes('PSI trigger refused') && l.includes(JSON.stringify(a.key))), Boolean, 5000);
  }, 120_000);

  /** Kills every holder so far and waits for them to exit (their files are released after). */
  async function killHolders(): Promise<void> {
    for (const h of holders) h.process.kill('SIGKILL');
    await Promise.all(holders.map((h) => (h.process.exitCode === null && h.process.signalCode === null ? new Promise((r) => h.process.once('exit', r)) : null)));
    holders.length = 0;
  }

  // The per-container copies are visible wherever the mount is (any pod given it): an open of
  // B's copy by a process of A must take A's share, or A drains B's (and, going round every
  // container's copy, the node's) while B's own readers get ENFILE/EMFILE.
  it('open files: A opening B\'s per-container copy takes A\'s share, not B\'s; B still opens its copy', async () => {
    await killHolders();
    const copyOfB = path.join(daemon.mountpoint, 'containers', encodeURIComponent(b.key), 'proc/pressure/cpu');
    const fromA = await hold(copyOfB, MAX_OPEN_FILES / 2, '', a.procsFiles);
    holders.push(fromA);
    expect(fromA.held).toBeLessThanOrEqual(PER_CONTAINER);
    expect(fromA.errno).toBe(23); // ENFILE
    const fromB = await hold(copyOfB, 10, '', b.procsFiles);
    holders.push(fromB);
    expect(fromB).toMatchObject({ held: 10, errno: 0 });
  }, 60_000);

  it('PSI triggers: A writing triggers on B\'s per-container copy takes A\'s share; B still writes one', async () => {
    await killHolders();
    const copyOfB = path.join(daemon.mountpoint, 'containers', encodeURIComponent(b.key), 'proc/pressure/cpu');
    const fromA = await hold(copyOfB, 40, 'some 150000 2000000\n', a.procsFiles);
    holders.push(fromA);
    expect(fromA.held).toBeLessThanOrEqual(32);
    expect(fromA.errno).toBe(24); // EMFILE
    const fromB = await hold(copyOfB, 1, 'some 150000 2000000\n', b.procsFiles);
    holders.push(fromB);
    expect(fromB).toMatchObject({ held: 1, errno: 0 });
  }, 60_000);
});
