/**
 * The CPU views end to end: real cgroups beneath our own (a cpuset of one CPU; CFS quotas of 0.5
 * and 1.5 CPUs), the real mount, and real tools in private mount + pid namespaces with every
 * served file bound over /proc/... and /sys/devices/system/cpu/online.
 */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { runInContainer, type RunResult } from '../helpers/container';

const MIB = 1024n * 1024n;
const HOST_CPUS = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length;
const HOST_ONLINE = fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
const NODE = process.execPath;

function ok(result: RunResult): string {
  if (result.code !== 0) throw new Error(`exit ${result.code}: ${result.stderr}\n${result.stdout}`);
  return result.stdout;
}

/** Every "cpu"/"cpuN" line of /proc/stat as name -> its numeric fields. */
function statCpuLines(text: string): Map<string, bigint[]> {
  const lines = new Map<string, bigint[]>();
  for (const line of text.split('\n')) {
    if (!/^cpu\d*\s/.test(line)) continue;
    const [name, ...fields] = line.trim().split(/\s+/);
    lines.set(name, fields.map((f) => BigInt(f)));
  }
  return lines;
}

describe('CPU views with real tools', () => {
  let daemon: DaemonHandle;
  let oneCpu: TestCgroup; // cpuset "1" (or "0" on a 1-CPU host), 256 MiB
  let halfCpu: TestCgroup; // quota 0.5 CPU, no cpuset, 512 MiB
  let cpuAndAHalf: TestCgroup; // quota 1.5 CPUs
  const cpusetCpu = HOST_CPUS > 1 ? '1' : '0';

  beforeAll(async () => {
    daemon = await startDaemon();
    oneCpu = createTestCgroup('cpu-one', { cpus: cpusetCpu, memoryLimitBytes: 256n * MIB });
    halfCpu = createTestCgroup('cpu-half', { cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, memoryLimitBytes: 512n * MIB });
    cpuAndAHalf = createTestCgroup('cpu-1.5', { cpuQuotaUs: 150_000, cpuPeriodUs: 100_000 });
  });

  afterAll(async () => {
    await daemon?.cleanup();
    for (const cg of [oneCpu, halfCpu, cpuAndAHalf]) await cg?.remove();
  });

  const inside = (cg: TestCgroup, cmd: string): Promise<RunResult> => runInContainer(cg, { mountpoint: daemon.mountpoint }, cmd);

  it('a cpuset of one CPU: getconf, node, cpuinfo, online and stat all say 1', async () => {
    const out = ok(await inside(oneCpu, [
      'getconf _NPROCESSORS_ONLN',
      `${NODE} -e "const os = require('os'); console.log(os.cpus().length, os.totalmem())"`,
      'grep -c ^processor /proc/cpuinfo',
      'cat /sys/devices/system/cpu/online',
      "grep -c '^cpu[0-9]' /proc/stat",
      "grep '^cpu[0-9]' /proc/stat | cut -d' ' -f1",
    ].join('; ')));
    expect(out.split('\n')).toEqual(['1', `1 ${256n * MIB}`, '1', '0', '1', 'cpu0', '']);
  });

  it('keeps the host block of the CPU it shows, renumbered from 0, with consistent siblings', async () => {
    const text = ok(await inside(oneCpu, 'cat /proc/cpuinfo'));
    const hostBlocks = fs.readFileSync('/proc/cpuinfo', 'utf8').trim().split('\n\n');
    const hostBlock = hostBlocks[Number(cpusetCpu)];
    const blocks = text.trim().split('\n\n');
    expect(blocks).toHaveLength(1);
    expect(blocks[0]).toMatch(/^processor\t: 0$/m);
    expect(/^model name.*$/m.exec(blocks[0])?.[0]).toBe(/^model name.*$/m.exec(hostBlock)?.[0]);
    if (/^siblings/m.test(hostBlock)) {
      expect(blocks[0]).toMatch(/^siblings\t: 1$/m);
      expect(blocks[0]).toMatch(/^cpu cores\t: 1$/m);
    }
  });

  it('a quota of 0.5 CPU shows 1 CPU; 1.5 CPUs shows 2 (at most the host\'s)', async () => {
    expect(ok(await inside(halfCpu, 'getconf _NPROCESSORS_ONLN; grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online')))
      .toBe('1\n1\n0\n');
    const expected = Math.min(2, HOST_CPUS);
    expect(ok(await inside(cpuAndAHalf, 'getconf _NPROCESSORS_ONLN; grep -c ^processor /proc/cpuinfo')))
      .toBe(`${expected}\n${expected}\n`);
    // The host reader (our own process, in the root cpu cgroup) still sees every CPU.
    expect(fs.readFileSync(`${daemon.mountpoint}/sys/devices/system/cpu/online`, 'utf8').trim()).toBe(HOST_ONLINE);
  });

  it('free -b, top -bn1, vmstat and uptime tell the container\'s truth', async () => {
    const limit = 512n * MIB;
    const free = ok(await inside(halfCpu, 'free -b'));
    const mem = /^Mem:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(free);
    expect(mem, free).not.toBeNull();
    expect(BigInt(mem![1])).toBe(limit);
    expect(BigInt(mem![3])).toBeLessThanOrEqual(limit);

    const top = ok(await inside(halfCpu, 'top -bn1 | head -5'));
    expect(top).toMatch(/^MiB Mem :\s+512\.0 total/m);
    const cpuLine = /^%Cpu\(s\):\s+([\d.]+) us,\s+([\d.]+) sy,.*?([\d.]+) id/m.exec(top);
    expect(cpuLine, top).not.toBeNull();
    const [us, sy, id] = [cpuLine![1], cpuLine![2], cpuLine![3]].map(Number);
    expect(us + sy + id).toBeGreaterThan(90);
    expect(us + sy + id).toBeLessThanOrEqual(100.1);
    expect(top).toMatch(/load average: [\d.]+, [\d.]+, [\d.]+/);

    const vmstat = ok(await inside(halfCpu, 'vmstat 1 2'));
    const rows = vmstat.trim().split('\n');
    const header = rows[1].trim().split(/\s+/);
    const last = rows[rows.length - 1].trim().split(/\s+/).map(Number);
    const freeKb = last[header.indexOf('free')];
    expect(freeKb).toBeGreaterThan(0);
    expect(BigInt(freeKb) * 1024n).toBeLessThanOrEqual(limit);
    const idle = last[header.indexOf('id')];
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThanOrEqual(100);

    // A container that just started has been up for seconds, not the host's hours.
    const up = ok(await inside(halfCpu, 'uptime; cat /proc/uptime'));
    expect(up).toMatch(/ up 0 min,/);
    const uptimeSec = Number(/^([\d.]+) ([\d.]+)$/m.exec(up)?.[1]);
    expect(uptimeSec).toBeGreaterThanOrEqual(0);
    expect(uptimeSec).toBeLessThan(60);
  });

  it('busybox cat (sendfile, through the page cache) prints the same bytes as cat, whoever read before', async () => {
    // Alternate readers whose files differ in size: a 1-CPU container and the host.
    for (let i = 0; i < 3; i++) {
      const inContainer = ok(await inside(oneCpu, 'busybox cat /proc/cpuinfo; echo ===; cat /proc/cpuinfo; echo ===; busybox cat /proc/meminfo; echo ===; cat /proc/meminfo'));
      const [bbCpu, cpu, bbMem, mem] = inContainer.split('===\n');
      expect(bbCpu).toBe(cpu);
      expect(cpu.match(/^processor/gm)).toHaveLength(1);
      expect(bbMem.split('\n')[0]).toBe(mem.split('\n')[0]); // MemTotal (later lines move)
      const hostView = execFileSync('busybox', ['cat', `${daemon.mountpoint}/proc/cpuinfo`], { encoding: 'utf8' });
      expect(hostView.match(/^processor/gm)).toHaveLength(HOST_CPUS);
    }
  });

  it('/proc/stat read 50 times in a row never goes backwards in any field', async () => {
    const out = ok(await inside(oneCpu,
      'for i in $(seq 50); do cat /proc/stat; echo ===; n=0; while [ $n -lt 3000 ]; do n=$((n+1)); done; done'));
    const reads = out.split('===\n').filter((t) => t.trim() !== '').map(statCpuLines);
    expect(reads).toHaveLength(50);
    for (let i = 1; i < reads.length; i++) {
      for (const [name, fields] of reads[i]) {
        const before = reads[i - 1].get(name);
        expect(before, `${name} missing in read ${i - 1}`).toBeDefined();
        fields.forEach((value, f) => {
          if (value < before![f]) throw new Error(`read ${i}: ${name} field ${f + 1} went from ${before![f]} to ${value}`);
        });
      }
    }
    // The busy loop ran inside: the container's user+system time advanced.
    const first = reads[0].get('cpu')!;
    const last = reads[reads.length - 1].get('cpu')!;
    expect(last[0] + last[2]).toBeGreaterThan(first[0] + first[2]);
  });
});
