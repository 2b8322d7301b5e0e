/**
 * The two switches on the real mount, with two "containers" (cgroups beneath our own plus private
 * mount namespaces; A in its own pid namespace), and kill -9 / restart / corrupt state.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { runInContainer, type RunResult } from '../helpers/container';

const MIB = 1024n * 1024n;
const HOST_CPUINFO = () => fs.readFileSync('/proc/cpuinfo', 'utf8');
const HOST_MEMTOTAL_KB = Number(/MemTotal:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1]);

function memTotalKb(text: string): number {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(text);
  if (!m) throw new Error(`no MemTotal in ${text}`);
  return Number(m[1]);
}

function sysctl(mnt: string, ...args: string[]): { stdout: string; stderr: string; status: number } {
  try {
    const stdout = execFileSync(process.execPath, [CLI, 'sysctl', '--mount', mnt, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { stdout, stderr: '', status: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; status: number };
    return { stdout: e.stdout, stderr: e.stderr, status: e.status };
  }
}

describe('kernel.stats_isolated and kernel.container_stats_isolated', () => {
  let daemon: DaemonHandle;
  let a: TestCgroup; // 256 MiB, own pid namespace
  let b: TestCgroup; // 128 MiB, shares our pid namespace
  let ctl: string;

  const inA = (cmd: string): Promise<RunResult> => runInContainer(a, { mountpoint: daemon.mountpoint, pidNamespace: true }, cmd);
  const inB = (cmd: string): Promise<RunResult> => runInContainer(b, { mountpoint: daemon.mountpoint, pidNamespace: false }, cmd);
  const write = (file: string, value: string) => `printf '${value}' > ${ctl}/${file}; echo "rc=$?"`;

  beforeAll(async () => {
    daemon = await startDaemon();
    ctl = path.join(daemon.mountpoint, 'proc/sys/kernel');
    a = createTestCgroup('switch-a', { memoryLimitBytes: 256n * MIB });
    b = createTestCgroup('switch-b', { memoryLimitBytes: 128n * MIB });
  });

  afterAll(async () => {
    await daemon?.cleanup();
    // Restarted daemons reuse the first one's directories; remove them with the last one.
    if (daemon) fs.rmSync(path.dirname(daemon.mountpoint), { recursive: true, force: true });
    await a?.remove();
    await b?.remove();
  });

  it('isolates both containers while the host switch is on (the default)', async () => {
    expect(fs.readFileSync(path.join(ctl, 'stats_isolated'), 'utf8')).toBe('1\n');
    expect(memTotalKb((await inA('cat /proc/meminfo')).stdout)).toBe(262144);
    expect(memTotalKb((await inB('cat /proc/meminfo')).stdout)).toBe(131072);
  });

  it("serves every container the host's files byte for byte when the host switch is off", async () => {
    fs.writeFileSync(path.join(ctl, 'stats_isolated'), '0\n');
    try {
      for (const run of [inA, inB]) {
        const result = await run('cat /proc/cpuinfo; echo ===; cat /sys/devices/system/cpu/online; echo ===; cat /proc/swaps');
        const expected = `${HOST_CPUINFO()}===\n${fs.readFileSync('/sys/devices/system/cpu/online', 'utf8')}===\n${fs.readFileSync('/proc/swaps', 'utf8')}`;
        expect(result.stdout).toBe(expected);
        expect(memTotalKb((await run('cat /proc/meminfo')).stdout)).toBe(HOST_MEMTOTAL_KB);
      }
    } finally {
      fs.writeFileSync(path.join(ctl, 'stats_isolated'), '1');
    }
    expect(memTotalKb((await inA('cat /proc/meminfo')).stdout)).toBe(262144);
  });

  it('lets container A opt out from inside while B stays isolated, and B cannot change A', async () => {
    expect((await inA(`cat ${ctl}/container_stats_isolated`)).stdout).toBe('1\n');
    expect((await inA(write('container_stats_isolated', '0'))).stdout).toContain('rc=0');
    expect((await inA(`cat ${ctl}/container_stats_isolated`)).stdout).toBe('0\n');
    expect(memTotalKb((await inA('cat /proc/meminfo')).stdout)).toBe(HOST_MEMTOTAL_KB);
    expect(memTotalKb((await inB('cat /proc/meminfo')).stdout)).toBe(131072);
    // B writing 1 sets B's own flag only.
    expect((await inB(write('container_stats_isolated', '1'))).stdout).toContain('rc=0');
    expect(memTotalKb((await inA('cat /proc/meminfo')).stdout)).toBe(HOST_MEMTOTAL_KB);
    expect((await inB(`cat ${ctl}/container_stats_isolated`)).stdout).toBe('1\n');
  });

  it('refuses a container writing the host switch (EPERM), and a non-root opener (EACCES at open, as /proc/sys)', async () => {
    const fromA = await inA(`printf 0 > ${ctl}/stats_isolated`);
    expect(fromA.code).not.toBe(0);
    expect(fromA.stderr).toMatch(/Operation not permitted/);
    const nonRoot = await inB(`setpriv --reuid 65534 --regid 65534 --clear-groups sh -c 'printf 0 | dd of=${ctl}/container_stats_isolated 2>&1'`);
    // dd prints the errno's text: the open is refused, as the kernel refuses root's 0644 files.
    expect(nonRoot.stdout).toMatch(/failed to open .*Permission denied/);
    expect(fs.readFileSync(path.join(ctl, 'stats_isolated'), 'utf8')).toBe('1\n');
    expect((await inB(`cat ${ctl}/container_stats_isolated`)).stdout).toBe('1\n');
  });

  it('answers EINVAL to anything but 0 or 1, and changes nothing', async () => {
    const bad = ['2', 'abc', '', '0\\n\\n', '01', ' 1', '-1'];
    for (const value of bad) {
      const result = await inB(`printf '%b' '${value}' | dd of=${ctl}/container_stats_isolated bs=16 2>&1; echo "rc=$?"`);
      // dd with empty input writes nothing and succeeds; everything else must fail with EINVAL.
      expect(result.stdout, value).toMatch(value === '' ? /rc=0\n$/ : /Invalid argument/);
    }
    const atOffset = await inB(`printf 0 | dd of=${ctl}/container_stats_isolated bs=1 seek=1 conv=notrunc 2>&1`);
    expect(atOffset.stdout).toMatch(/Invalid argument/);
    const tooLong = await inB(`printf '1\\n\\n\\n' > ${ctl}/container_stats_isolated; echo "rc=$?"`);
    expect(tooLong.stdout).toContain('rc=1');
    expect((await inB(`cat ${ctl}/container_stats_isolated`)).stdout).toBe('1\n');
    expect(fs.readFileSync(path.join(ctl, 'stats_isolated'), 'utf8')).toBe('1\n');
  });

  it('isolfs sysctl round-trips both keys with sysctl(8) spelling', () => {
    expect(sysctl(daemon.mountpoint, 'kernel.stats_isolated').stdout).toBe('kernel.stats_isolated = 1\n');
    expect(sysctl(daemon.mountpoint, '-w', 'kernel.stats_isolated=0').stdout).toBe('kernel.stats_isolated = 0\n');
    expect(sysctl(daemon.mountpoint, '-a').stdout).toBe('kernel.stats_isolated = 0\nkernel.container_stats_isolated = 1\n');
    expect(sysctl(daemon.mountpoint, '-w', 'kernel.stats_isolated=1').stdout).toBe('kernel.stats_isolated = 1\n');
    const bad = sysctl(daemon.mountpoint, '-w', 'kernel.stats_isolated=7');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/setting key "kernel.stats_isolated"/);
    // The test process's own cgroup is a "container" too: round-trip its flag.
    expect(sysctl(daemon.mountpoint, '-w', 'kernel.container_stats_isolated=0').stdout).toBe('kernel.container_stats_isolated = 0\n');
    expect(sysctl(daemon.mountpoint, '-w', 'kernel.container_stats_isolated=1').stdout).toBe('kernel.container_stats_isolated = 1\n');
  });

  it('keeps every switch across kill -9 and a restart', async () => {
    fs.writeFileSync(path.join(ctl, 'stats_isolated'), '0');
    await daemon.kill9();
    const { mountpoint, stateDir } = daemon;
    const restarted = await startDaemon({ mountpoint, stateDir });
    try {
      expect(restarted.logs.some((l) => l.includes('detached a dead mount'))).toBe(true);
      expect(fs.readFileSync(path.join(ctl, 'stats_isolated'), 'utf8')).toBe('0\n');
      fs.writeFileSync(path.join(ctl, 'stats_isolated'), '1');
      expect(memTotalKb((await inA('cat /proc/meminfo')).stdout)).toBe(HOST_MEMTOTAL_KB); // A still opted out
      expect(memTotalKb((await inB('cat /proc/meminfo')).stdout)).toBe(131072);
    } finally {
      await restarted.stop();
    }
    daemon = await startDaemon({ mountpoint, stateDir });
  });

  it('reports a corrupt state file, keeps it aside, and starts from defaults', async () => {
    await daemon.stop();
    const { mountpoint, stateDir } = daemon;
    fs.writeFileSync(path.join(stateDir, 'switches.json'), '{"version": 1, "hostIsolated": tru');
    daemon = await startDaemon({ mountpoint, stateDir });
    const report = daemon.logs.find((l) => l.includes('switch state file is corrupt'));
    expect(report).toBeDefined();
    expect(JSON.parse(report as string).level).toBe(50); // pino's "error"
    const aside = fs.readdirSync(stateDir).filter((f) => f.startsWith('switches.json.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(fs.readFileSync(path.join(stateDir, aside[0]), 'utf8')).toBe('{"version": 1, "hostIsolated": tru');
    expect(fs.readFileSync(path.join(ctl, 'stats_isolated'), 'utf8')).toBe('1\n');
  });

  it('honours CONTAINER_STATS_ISOLATED=0 in the first process, and a write from inside wins', async () => {
    const c = createTestCgroup('switch-env', { memoryLimitBytes: 64n * MIB });
    try {
      const opts = { mountpoint: daemon.mountpoint, pidNamespace: true, env: { CONTAINER_STATS_ISOLATED: '0' } };
      expect(memTotalKb((await runInContainer(c, opts, 'cat /proc/meminfo')).stdout)).toBe(HOST_MEMTOTAL_KB);
      const afterWrite = await runInContainer(c, opts, `printf 1 > ${ctl}/container_stats_isolated; cat /proc/meminfo`);
      expect(memTotalKb(afterWrite.stdout)).toBe(65536);
    } finally {
      await c.remove();
    }
  });
});
