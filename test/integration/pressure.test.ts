/**
 * End to end: /proc/pressure/{cpu,memory,io} per cgroup, and PSI triggers that wake poll(2).
 * The real daemon; two real cgroups beneath ours (on a hybrid host each also gets a cgroup in the
 * unified hierarchy, where the kernel keeps PSI per cgroup, as runc makes one); one kept under
 * memory pressure by a real writer (hybrid: a v1 memory limit, whose reclaim waits on writeback)
 * or allocator (v2: memory.high throttling), the other idle; readers in containers with the
 * served file bound over /proc/pressure/memory; a small C reader that writes a trigger and
 * polls for POLLPRI, as systemd-oomd and Kubernetes agents do.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, isPureV2, type TestCgroup } from '../helpers/cgroups';
import { runInContainer, startContainer, type RunResult, type RunningContainer } from '../helpers/container';
import { ok, until } from '../helpers/procText';

const MIB = 1024n * 1024n;
const PRESSURE_FILES = ['/proc/pressure/cpu', '/proc/pressure/memory', '/proc/pressure/io'];
/** Debian's python3 (scripts/deps.sh), for the v2 load (not a pyenv shim: containers run as other users too). */
const PYTHON = '/usr/bin/python3';

interface Psi {
  someAvg10: number;
  someTotalUs: bigint;
}

function parsePsi(text: string): Psi {
  const m = /^some avg10=(\d+\.\d\d) avg60=\d+\.\d\d avg300=\d+\.\d\d total=(\d+)$/m.exec(text);
  if (!m) throw new Error(`not a PSI file:\n${text}`);
  return { someAvg10: Number(m[1]), someTotalUs: BigInt(m[2]) };
}

/** The trigger reader (psi/psi_reader.c), compiled into the test's directory. */
const READER_SOURCE = path.join(__dirname, 'psi', 'psi_reader.c');

function compileReader(dir: string): string {
  const binary = path.join(dir, 'psi_reader');
  execFileSync('cc', ['-O2', '-Wall', '-o', binary, READER_SOURCE]);
  return binary;
}

interface ReaderResult {
  accepted: number;
  writeErrno?: string;
  secondWriteErrno?: string;
  pri?: boolean;
  events?: number;
  pollSeconds?: number;
}

describe('/proc/pressure per cgroup', () => {
  let daemon: DaemonHandle;
  let loaded: TestCgroup;
  let idle: TestCgroup;
  let load: RunningContainer | null = null;
  let workDir: string;
  let readerPath: string;

  beforeAll(async () => {
    daemon = await startDaemon();
    loaded = createTestCgroup('psi-loaded', { memoryLimitBytes: 32n * MIB, unified: true });
    idle = createTestCgroup('psi-idle', { unified: true });
    for (const cgroup of [loaded, idle]) {
      // Without a cgroup2 directory there is no per-cgroup PSI to test: fail loudly.
      expect(cgroup.dirs.get('unified'), 'no cgroup2 (unified) hierarchy on this host').toBeDefined();
    }
    workDir = fs.mkdtempSync(path.join('/var/tmp', 'isolfs-psi-'));
    fs.chmodSync(workDir, 0o755); // the unprivileged reader runs it too
    readerPath = compileReader(workDir);
    let command: string;
    if (isPureV2()) {
      // v2: anonymous memory past memory.high is throttled (the penalty sleep is a memory stall).
      fs.writeFileSync(path.join(loaded.dirs.get('memory') as string, 'memory.high'), String(16n * MIB));
      command = `exec ${PYTHON} -c 'import time
b = bytearray(28 << 20)
while True:
    for i in range(0, len(b), 4096): b[i] = (b[i] + 1) & 255'`;
    } else {
      // v1: writing a file through a 32 MiB memory cgroup: its reclaim waits on the writeback.
      command = `while true; do dd if=/dev/zero of=${workDir}/written bs=1M count=256 status=none; done`;
    }
    load = startContainer(loaded, { mountpoint: null }, command);
  });

  afterAll(async () => {
    await load?.stop();
    await daemon?.cleanup();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
    await loaded?.remove();
    await idle?.remove();
  });

  function realPsi(cgroup: TestCgroup): Psi {
    return parsePsi(fs.readFileSync(path.join(cgroup.dirs.get('unified') as string, 'memory.pressure'), 'utf8'));
  }

  async function servedPsi(cgroup: TestCgroup): Promise<Psi> {
    const result = await runInContainer(cgroup, { mountpoint: daemon.mountpoint, files: ['/proc/pressure/memory'] }, 'cat /proc/pressure/memory');
    return parsePsi(ok(result));
  }

  async function reader(cgroup: TestCgroup, args: string): Promise<ReaderResult> {
    const result = await runInContainer(cgroup, { mountpoint: daemon.mountpoint, files: PRESSURE_FILES }, `${readerPath} ${args}`);
    return JSON.parse(ok(result)) as ReaderResult;
  }

  it('the kernel format: every file has some and full lines', async () => {
    const result = await runInContainer(idle, { mountpoint: daemon.mountpoint, files: PRESSURE_FILES },
      'for f in cpu memory io; do cat /proc/pressure/$f; done');
    const lines = ok(result).trim().split('\n');
    expect(lines).toHaveLength(6);
    for (const [i, line] of lines.entries()) {
      expect(line).toMatch(new RegExp(`^${i % 2 === 0 ? 'some' : 'full'} avg10=\\d+\\.\\d\\d avg60=\\d+\\.\\d\\d avg300=\\d+\\.\\d\\d total=\\d+$`));
    }
  });

  it('a container under memory pressure sees its own non-zero some avg10; its idle sibling sees its own', async () => {
    // avg10 is updated every 2 s: wait for the load to show in the real cgroup file first.
    await until('memory pressure in the loaded cgroup', () => realPsi(loaded).someAvg10, (v) => v > 0, 30_000);
    const before = realPsi(loaded);
    const served = await servedPsi(loaded);
    const after = realPsi(loaded);
    expect(served.someAvg10).toBeGreaterThan(0);
    // The served total is the container's own, read between two reads of its cgroup's file.
    expect(served.someTotalUs).toBeGreaterThanOrEqual(before.someTotalUs);
    expect(served.someTotalUs).toBeLessThanOrEqual(after.someTotalUs);

    const idleBefore = realPsi(idle);
    const idleServed = await servedPsi(idle);
    const idleAfter = realPsi(idle);
    expect(idleServed.someAvg10).toBeLessThan(1);
    expect(idleServed.someTotalUs).toBeGreaterThanOrEqual(idleBefore.someTotalUs);
    expect(idleServed.someTotalUs).toBeLessThanOrEqual(idleAfter.someTotalUs);
    expect(idleServed.someTotalUs).toBeLessThan(served.someTotalUs);
  });

  it('a PSI trigger written to /proc/pressure/memory wakes poll(2) with POLLPRI; a second write is EBUSY', async () => {
    await until('memory pressure in the loaded cgroup', () => realPsi(loaded).someAvg10, (v) => v > 0, 30_000);
    // 10 ms of stall in a 2 s window (a multiple of 2 s: allowed to unprivileged writers too).
    // Three events in a row: each POLLPRI is followed by the next one (at most one per window).
    const result = await reader(loaded, '/proc/pressure/memory "some 10000 2000000" 30 1 3');
    expect(result).toMatchObject({ accepted: 1, secondWriteErrno: 'EBUSY', pri: true, events: 3 });
  });

  it("the idle sibling's trigger on its own file does not fire while the other container stalls", async () => {
    const result = await reader(idle, '/proc/pressure/memory "some 100000 2000000" 4');
    expect(result).toMatchObject({ accepted: 1, pri: false });
  });

  it('the kernel validates the trigger (EINVAL passed back); a writer without CAP_SYS_RESOURCE needs 2 s windows', async () => {
    expect(await reader(idle, '/proc/pressure/memory "bogus 1 2" 0')).toMatchObject({ accepted: 0, writeErrno: 'EINVAL' });
    expect(await reader(idle, '/proc/pressure/memory "some 3000000 2000000" 0')).toMatchObject({ accepted: 0, writeErrno: 'EINVAL' });
    const setpriv = 'setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all --bounding-set=-all';
    const unprivileged = await runInContainer(idle, { mountpoint: daemon.mountpoint, files: PRESSURE_FILES },
      `${setpriv} ${readerPath} /proc/pressure/memory "some 100000 1000000" 0; ${setpriv} ${readerPath} /proc/pressure/memory "some 100000 2000000" 0`);
    const [oneSecond, twoSeconds] = ok(unprivileged).trim().split('\n').map((l) => JSON.parse(l) as ReaderResult);
    expect(oneSecond).toMatchObject({ accepted: 0, writeErrno: 'EINVAL' });
    expect(twoSeconds).toMatchObject({ accepted: 1 });
  });

  it('triggers are bounded per container (EMFILE) and their fds are released with the files', async () => {
    const daemonPid = daemon.process.pid as number;
    const pressureFds = () => fs.readdirSync(`/proc/${daemonPid}/fd`)
      .filter((fd) => { try { return fs.readlinkSync(`/proc/${daemonPid}/fd/${fd}`).endsWith('.pressure'); } catch { return false; } }).length;
    const result = await reader(idle, '/proc/pressure/io "some 100000 2000000" 0 40');
    expect(result).toMatchObject({ accepted: 32, writeErrno: 'EMFILE' });
    // The reader exited: every file was released, and with it each real fd.
    await until('pressure fds released', pressureFds, (n) => n === 0, 10_000);
  });
});

/** Runs `cmd` in the container's mount namespace, from its cgroup (as its own processes do). */
function runInside(container: RunningContainer, cgroup: TestCgroup, cmd: string): Promise<RunResult> {
  const join = cgroup.procsFiles.map((f) => `echo $$ > ${f}`).join('; ');
  return new Promise((resolve) => {
    execFile('bash', ['-c', `${join}; exec nsenter -t ${container.process.pid} -m sh -c '${cmd}'`], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? (typeof err.code === 'number' ? err.code : 1) : 0 });
    });
  });
}

describe('/proc/pressure delivered by --attach (runc refuses binds over /proc/pressure at creation)', () => {
  let daemon: DaemonHandle;
  let cgroup: TestCgroup;
  let container: RunningContainer;
  let workDir: string;

  beforeAll(async () => {
    cgroup = createTestCgroup('psi-attach', { unified: true });
    expect(cgroup.dirs.get('unified'), 'no cgroup2 (unified) hierarchy on this host').toBeDefined();
    daemon = await startDaemon({ args: ['--attach', cgroup.key, '--attach-interval-ms', '300'] });
    workDir = fs.mkdtempSync(path.join('/var/tmp', 'isolfs-psi-attach-'));
    compileReader(workDir);
    // Its own /proc (--mount-proc) has /proc/pressure/* to bind over; nothing bound at creation.
    container = startContainer(cgroup, { mountpoint: null }, 'exec sleep 600');
  });

  afterAll(async () => {
    await container?.stop();
    await daemon?.cleanup();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
    await cgroup?.remove();
  });

  it("binds the container's own copies over /proc/pressure/{cpu,memory,io}; they show its cgroup's PSI and take triggers", async () => {
    const own = `/containers/${encodeURIComponent(cgroup.key)}`;
    const mounts = () => fs.readFileSync(`/proc/${container.process.pid}/mountinfo`, 'utf8').split('\n')
      .filter((l) => l.includes(' - fuse.isolfs ') && l.split(' ')[4].startsWith('/proc/pressure/'))
      .map((l) => `${l.split(' ')[4]} ${l.split(' ')[3]}`);
    await until('pressure files attached', mounts, (m) => m.length === 3, 20_000);
    expect(new Set(mounts())).toEqual(new Set(PRESSURE_FILES.map((f) => `${f} ${own}${f}`)));

    const unified = cgroup.dirs.get('unified') as string;
    const before = parsePsi(fs.readFileSync(path.join(unified, 'io.pressure'), 'utf8'));
    const served = parsePsi(ok(await runInside(container, cgroup, 'cat /proc/pressure/io')));
    const after = parsePsi(fs.readFileSync(path.join(unified, 'io.pressure'), 'utf8'));
    expect(served.someTotalUs).toBeGreaterThanOrEqual(before.someTotalUs);
    expect(served.someTotalUs).toBeLessThanOrEqual(after.someTotalUs);

    // A trigger through the attached copy reaches the container's cgroup: CPU stall of its own.
    const result = await runInside(container, cgroup,
      // four spinners on two CPUs, each ended by timeout(1) (nothing left running in the cgroup)
      `for i in 1 2 3 4; do timeout 8 yes >/dev/null 2>&1 & done; ${workDir}/psi_reader /proc/pressure/cpu "some 1000 2000000" 20; wait`);
    expect(JSON.parse(ok(result).trim().split('\n').pop() as string)).toMatchObject({ accepted: 1, pri: true });
  });
});
