/**
 * A container whose first process makes reads of its /proc/<pid>/environ never end
 * (test/helpers/environ_hang.py: its mmap lock held by a fault on its own FUSE file that is never
 * answered, a writer queued behind). The env opt-out reads that environ for an uncached container:
 * on the thread serving every pod, that froze the daemon. Now the read is bounded: the hung
 * container gets the isolated view, every other container keeps being answered, a stuck reader
 * thread ends once its process lets go (a second attacker, released), and the daemon still stops
 * when asked.
 *
 * The unfixed daemon never answers: every read here has its own timeout, and afterAll frees the
 * daemon by ending the attacker (whose FUSE server's death fails the READ it holds back).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { until } from '../helpers/procText';

const MIB = 1024n * 1024n;
const HANG_SCRIPT = path.join(__dirname, '..', 'helpers', 'environ_hang.py');
/** Debian's python3 (a test dependency through scripts/deps.sh) where there is one: pyenv's shims need root's PATH. */
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** A read the daemon answers takes ms; a frozen daemon never answers. Slower in the emulated VM. */
const READ_LIMIT_MS = process.env.ISOLFS_VM === '1' ? 10_000 : 3000;

interface Read { answered: boolean; ms: number; stdout: string }

/** `cat file` from a process placed in `cgroup`, given up on (not killed: it cannot be) after READ_LIMIT_MS. */
function readIn(cgroup: TestCgroup, file: string): Promise<Read> {
  const join = cgroup.procsFiles.map((f) => `echo $$ > ${f}`).join('; ');
  const started = Date.now();
  const child = spawn('bash', ['-c', `${join}; exec cat ${file}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ answered: false, ms: Date.now() - started, stdout }), READ_LIMIT_MS);
    child.on('close', () => {
      clearTimeout(timer);
      resolve({ answered: true, ms: Date.now() - started, stdout });
    });
  });
}

/** The first log line containing `text`, waiting up to 2 s for it (it comes through the daemon's stdout). */
async function logLine(daemon: DaemonHandle, text: string): Promise<string | undefined> {
  const deadline = Date.now() + 2000;
  while (true) {
    const line = daemon.logs.find((l) => l.includes(text));
    if (line !== undefined || Date.now() > deadline) return line;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function memTotalKb(text: string): number {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

interface Attacker { child: ChildProcess; pid: number; serverPid: number; mnt: string }

/** A container whose first process is environ_hang.py, once its lock is held (it says "held"). */
async function startAttacker(cgroup: TestCgroup): Promise<Attacker> {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-environ-hang-'));
  // Its first process: bash moves itself into the cgroup and becomes the attacker (exec).
  const join = cgroup.procsFiles.map((f) => `echo $$ > ${f}`).join('; ');
  const child = spawn('bash', ['-c', `${join}; exec ${PYTHON} ${HANG_SCRIPT} ${mnt}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const attacker: Attacker = { child, pid: 0, serverPid: 0, mnt };
  const held = await new Promise<string>((resolve) => {
    let out = '';
    const timer = setTimeout(() => resolve(`nothing in 15 s: ${out}`), 15_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) { clearTimeout(timer); resolve(out); }
    });
    child.on('close', (code) => { clearTimeout(timer); resolve(`exited (${code}): ${out}`); });
  });
  const m = /^held (\d+) (\d+)/.exec(held);
  if (m) [attacker.pid, attacker.serverPid] = [Number(m[1]), Number(m[2])];
  else await endAttacker(attacker);
  if (!m) throw new Error(`environ_hang.py did not hold its lock: ${held}`);
  return attacker;
}

/**
 * Ends it: the server's death fails the READ its fault waits on, which frees the first process
 * and every read of its environ (the unfixed daemon's main thread, a stuck reader thread).
 * Backstop: its FUSE connection (in its own mount namespace) aborted through fusectl.
 */
async function endAttacker(attacker: Attacker): Promise<void> {
  const { child } = attacker;
  for (const pid of [attacker.serverPid, attacker.pid, child.pid ?? 0]) if (pid > 0) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  if (child.exitCode === null && child.signalCode === null) {
    const exited = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      child.on('close', () => { clearTimeout(timer); resolve(true); });
    });
    if (!exited) {
      let mountinfo = '';
      try { mountinfo = fs.readFileSync(`/proc/${attacker.pid}/mountinfo`, 'utf8'); } catch { /* gone */ }
      const line = mountinfo.split('\n').find((l) => l.split(' ')[4] === attacker.mnt);
      if (line) fs.writeFileSync(`/sys/fs/fuse/connections/${line.split(' ')[2].split(':')[1]}/abort`, '1');
    }
  }
  fs.rmSync(attacker.mnt, { recursive: true, force: true });
}

describe('a container that keeps its environ from being read', () => {
  let daemon: DaemonHandle;
  let hung: TestCgroup;
  let released: TestCgroup;
  let other: TestCgroup;
  const attackers: Attacker[] = [];
  let attackerPid = 0;
  let port = 0;

  const metricsText = async (): Promise<string> =>
    (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(READ_LIMIT_MS) })).text();

  beforeAll(async () => {
    daemon = await startDaemon({ args: ['--http', '127.0.0.1:0'] });
    // The line can come after the daemon is ready (the VM's emulated CPUs): waited for, not taken as absent.
    const listening = await until('metrics endpoint listening', () => daemon.logs.find((l) => l.includes('health and metrics endpoint listening')), Boolean, 20_000);
    port = (JSON.parse(listening as string) as { port: number }).port;
    hung = createTestCgroup('env-hang', { memoryLimitBytes: 96n * MIB });
    released = createTestCgroup('env-released', { memoryLimitBytes: 80n * MIB });
    other = createTestCgroup('env-other', { memoryLimitBytes: 64n * MIB });
    attackers.push(await startAttacker(hung));
    attackerPid = attackers[0].pid;
  }, 40_000);

  afterAll(async () => {
    for (const attacker of attackers) await endAttacker(attacker);
    await daemon?.cleanup();
    await hung?.remove();
    await released?.remove();
    await other?.remove();
  });

  it('blocks a plain read of its environ (the kernel behaviour the rest relies on)', () => {
    const r = spawnSync('timeout', ['1', 'cat', `/proc/${attackerPid}/environ`], { encoding: 'utf8' });
    // 124: timeout ended a cat still waiting. Anything else: this kernel does not block, and the
    // tests below would prove nothing.
    expect(r.status, `cat /proc/${attackerPid}/environ was not held up (status ${r.status}): this test proves nothing here`).toBe(124);
  });

  it("answers the hung container's reads, isolated, within the bound", async () => {
    const first = await readIn(hung, `${daemon.mountpoint}/proc/meminfo`);
    expect(first.answered, `the hung container's read was not answered in ${READ_LIMIT_MS} ms: the daemon is frozen`).toBe(true);
    expect(memTotalKb(first.stdout)).toBe(98304);
    const warning = await logLine(daemon, 'kept its environment from being read');
    expect(warning).toBeDefined();
    expect(JSON.parse(warning as string)).toMatchObject({ container: hung.key, pid: attackerPid });
    // Not read again: answered from the record, no second wait, no second warning.
    const again = await readIn(hung, `${daemon.mountpoint}/proc/sys/kernel/container_stats_isolated`);
    expect(again.answered).toBe(true);
    expect(again.stdout).toBe('1\n');
    expect(daemon.logs.filter((l) => l.includes('kept its environment from being read'))).toHaveLength(1);
  });

  it("keeps answering another container's reads, with bounded latency", async () => {
    for (let i = 0; i < 10; i++) {
      const r = await readIn(other, `${daemon.mountpoint}/proc/meminfo`);
      expect(r.answered, `read ${i} of another container not answered in ${READ_LIMIT_MS} ms: the daemon is frozen`).toBe(true);
      expect(memTotalKb(r.stdout)).toBe(65536);
    }
  });

  it('counts the unanswered read and the stuck thread in /metrics', async () => {
    const text = await metricsText();
    expect(text).toMatch(/^isolfs_env_optout_unanswered_total\{why="timed-out"\} 1$/m);
    expect(text).toMatch(/^isolfs_env_optout_threads_stuck 1$/m);
  });

  it('ends a stuck thread once the process lets go of its read', async () => {
    const attacker = await startAttacker(released);
    attackers.push(attacker);
    const r = await readIn(released, `${daemon.mountpoint}/proc/meminfo`);
    expect(r.answered).toBe(true);
    expect(memTotalKb(r.stdout)).toBe(81920);
    expect(await metricsText()).toMatch(/^isolfs_env_optout_threads_stuck 2$/m);
    process.kill(attacker.serverPid, 'SIGKILL'); // its READ fails: the thread's read of its environ returns
    const deadline = Date.now() + 5000;
    let stuck = '';
    let returned: string | undefined;
    while (Date.now() < deadline) {
      stuck = /^isolfs_env_optout_threads_stuck (\d+)$/m.exec(await metricsText())?.[1] ?? '';
      returned = daemon.logs.find((l) => l.includes('a stuck environ read returned')); // the log line arrives later
      if (stuck === '1' && returned) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(stuck).toBe('1');
    expect(returned).toBeDefined();
    expect(JSON.parse(returned as string)).toMatchObject({ pid: attacker.pid });
  }, 30_000);

  it('still stops when asked while a reader thread is stuck', async () => {
    const stopped = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 15_000);
      void daemon.stop().then(() => { clearTimeout(timer); resolve(true); });
    });
    expect(stopped, 'the daemon did not exit within 15 s of SIGTERM').toBe(true);
    expect(daemon.logs.some((l) => l.includes('environ reader threads stuck in the kernel'))).toBe(true);
    expect(daemon.logs.some((l) => l.includes('"msg":"unmounted"'))).toBe(true);
    expect(daemon.process.signalCode).toBe('SIGKILL'); // its own, at exit: the stuck thread cannot be joined
  }, 20_000);
});
