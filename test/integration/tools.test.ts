/**
 * Real tools (free, top, vmstat, uptime) in a container with a CFS quota and a memory limit and
 * no cpuset: the real daemon, real cgroups beneath our own, and private mount + pid namespaces
 * with every served file bound over /proc/... and /sys/devices/system/cpu/online.
 *
 * Two quotas: 1.5 CPUs (rounded up to 2: on a 2-CPU machine that is every CPU, so the CPU count
 * alone cannot tell isolfs from the host there) and 0.5 CPU (1 CPU: a case that fails when the
 * host's files show through).
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { runInContainer, type RunResult } from '../helpers/container';
import { loadAverageOfTool, ok, parseLoadavg } from '../helpers/procText';

const MIB = 1024n * 1024n;
const HOST_CPUS = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length;

interface QuotaCase {
  label: string;
  quotaUs: number;
  memoryLimitBytes: bigint;
  /** What cpuinfo, online and getconf must show: ceil(quota / period), at most the host's. */
  cpus: number;
}

const CASES: QuotaCase[] = [
  { label: '1.5 CPUs of quota and 256 MiB', quotaUs: 150_000, memoryLimitBytes: 256n * MIB, cpus: Math.min(2, HOST_CPUS) },
  { label: '0.5 CPU of quota and 512 MiB', quotaUs: 50_000, memoryLimitBytes: 512n * MIB, cpus: 1 },
];

/** The columns of a tool's table row by header name ("free", "cache", ...). */
function columns(header: string, row: string): Map<string, number> {
  const names = header.trim().split(/\s+/);
  const values = row.trim().split(/\s+/).map(Number);
  if (names.length !== values.length || values.some((v) => !Number.isFinite(v))) {
    throw new Error(`row does not match header:\n${header}\n${row}`);
  }
  return new Map(names.map((name, i) => [name, values[i]]));
}

describe('real tools in containers with a CFS quota and a memory limit', () => {
  let daemon: DaemonHandle;

  beforeAll(async () => {
    daemon = await startDaemon();
  });

  afterAll(async () => {
    await daemon?.cleanup();
  });

  describe.each(CASES)('$label', (c) => {
    let cgroup: TestCgroup;
    /** Same limits, read for the first time by the load average test (see there). */
    let fresh: TestCgroup;
    const limitKb = Number(c.memoryLimitBytes / 1024n);

    beforeAll(() => {
      const options = { cpuQuotaUs: c.quotaUs, cpuPeriodUs: 100_000, memoryLimitBytes: c.memoryLimitBytes };
      cgroup = createTestCgroup(`tools-${c.quotaUs}`, options);
      fresh = createTestCgroup(`tools-${c.quotaUs}-fresh`, options);
    });

    afterAll(async () => {
      await cgroup?.remove();
      await fresh?.remove();
    });

    const inside = (cg: TestCgroup, cmd: string): Promise<RunResult> => runInContainer(cg, { mountpoint: daemon.mountpoint }, cmd);

    it("getconf, cpuinfo and cpu/online show ceil(quota) CPUs", async () => {
      const out = ok(await inside(cgroup, 'getconf _NPROCESSORS_ONLN; grep -c ^processor /proc/cpuinfo; grep -c "^cpu[0-9]" /proc/stat; cat /sys/devices/system/cpu/online'));
      expect(out).toBe(`${c.cpus}\n${c.cpus}\n${c.cpus}\n${c.cpus === 1 ? '0' : `0-${c.cpus - 1}`}\n`);
    });

    it('free -b: total is the limit, and free <= available <= total', async () => {
      const out = ok(await inside(cgroup, 'free -b'));
      const lines = out.split('\n');
      const mem = columns(lines[0], lines.find((l) => l.startsWith('Mem:'))!.replace(/^Mem:/, ''));
      expect(BigInt(mem.get('total')!)).toBe(c.memoryLimitBytes);
      const [total, used, free, available] = ['total', 'used', 'free', 'available'].map((k) => mem.get(k)!);
      expect(free).toBeGreaterThan(0);
      expect(free).toBeLessThanOrEqual(available);
      expect(available).toBeLessThanOrEqual(total);
      expect(used).toBeGreaterThan(0); // this shell, free itself: the cgroup is charged for them
      expect(mem.get('buff/cache')!).toBeLessThanOrEqual(total);
    });

    it("top -bn1: a %Cpu(s) line that adds up to 100 and the limit as 'MiB Mem' total", async () => {
      const out = ok(await inside(cgroup, 'top -bn1 | head -5'));
      const cpu = /^%Cpu\(s\):(.*)$/m.exec(out);
      expect(cpu, out).not.toBeNull();
      const shares = [...cpu![1].matchAll(/([\d.]+) (us|sy|ni|id|wa|hi|si|st)/g)];
      expect(shares.map((s) => s[2])).toEqual(['us', 'sy', 'ni', 'id', 'wa', 'hi', 'si', 'st']);
      const sum = shares.reduce((acc, s) => acc + Number(s[1]), 0);
      expect(sum).toBeGreaterThan(99);
      expect(sum).toBeLessThan(101);

      const mem = /^MiB Mem :\s+([\d.]+) total,\s+([\d.]+) free,\s+([\d.]+) used,\s+([\d.]+) buff\/cache/m.exec(out);
      expect(mem, out).not.toBeNull();
      expect(mem![1]).toBe(`${c.memoryLimitBytes / MIB}.0`);
      expect(Number(mem![2])).toBeGreaterThan(0);
      expect(Number(mem![2])).toBeLessThanOrEqual(Number(mem![1]));
    });

    it('vmstat 1 2 runs; its memory columns are within the limit; its second row is measured over that second', async () => {
      // One busy loop: 1 CPU of the 2 shown under 1.5 CPUs of quota, 0.5 of the 1 shown under
      // 0.5: about half of the container's CPU time either way. vmstat keeps /proc/stat open and
      // reads it again from offset 0 for its second row, as procps 4's top does for every frame.
      const out = ok(await inside(cgroup, 'sh -c "while :; do :; done" & loop=$!; sleep 0.3; vmstat 1 2; kill -9 $loop'));
      const rows = out.trim().split('\n');
      expect(rows, out).toHaveLength(4);
      for (const row of rows.slice(2)) {
        const v = columns(rows[1], row);
        for (const key of ['swpd', 'free', 'buff', 'cache']) {
          expect(v.get(key), `${key} in\n${out}`).toBeGreaterThanOrEqual(0);
          expect(v.get(key), `${key} in\n${out}`).toBeLessThanOrEqual(limitKb);
        }
        expect(v.get('free')!).toBeGreaterThan(0);
        expect(v.get('free')! + v.get('buff')! + v.get('cache')!).toBeLessThanOrEqual(limitKb);
        const cpu = ['us', 'sy', 'id', 'wa', 'st'].reduce((acc, k) => acc + v.get(k)!, 0);
        // vmstat rounds each column on its own: 100 +- 2.
        expect(cpu, out).toBeGreaterThanOrEqual(98);
        expect(cpu, out).toBeLessThanOrEqual(102);
      }
      const second = columns(rows[1], rows[3]);
      // A re-read that returned the first read's bytes would make every delta 0: "0 0 100".
      expect(second.get('in'), out).toBeGreaterThan(0);
      expect(second.get('cs'), out).toBeGreaterThan(0);
      expect(second.get('us')! + second.get('sy')!, out).toBeGreaterThanOrEqual(15);
      expect(second.get('us')! + second.get('sy')!, out).toBeLessThanOrEqual(75);
    });

    it('a reader that keeps a file open and reads it again from offset 0 gets fresh content', async () => {
      // What procps 4 (vmstat, top, free -s), and any monitoring agent that keeps its fds, does.
      const script = [
        "const fs = require('fs');",
        "const first = (fd) => { const b = Buffer.alloc(1 << 16); return b.toString('utf8', 0, fs.readSync(fd, b, 0, b.length, 0)).split('\\n')[0]; };",
        "const fds = ['/proc/uptime', '/proc/stat'].map((f) => fs.openSync(f, 'r'));",
        'const before = fds.map(first);',
        "require('child_process').execSync('sleep 1');",
        'console.log(JSON.stringify([before, fds.map(first)]));',
      ].join(' ');
      const out = ok(await inside(cgroup, `${process.execPath} -e "${script}"`));
      const [[uptimeBefore, statBefore], [uptimeAfter, statAfter]] = JSON.parse(out) as [[string, string], [string, string]];
      const seconds = (line: string) => Number(line.split(' ')[0]);
      expect(seconds(uptimeAfter) - seconds(uptimeBefore), `${uptimeBefore} -> ${uptimeAfter}`).toBeGreaterThanOrEqual(0.9);
      const ticks = (line: string) => line.trim().split(/\s+/).slice(1, 9).reduce((a, f) => a + BigInt(f), 0n);
      expect(ticks(statAfter) - ticks(statBefore), `${statBefore} -> ${statAfter}`).toBeGreaterThanOrEqual(BigInt(50 * c.cpus));
    });

    it("uptime and top show the container's load average and its own, short, uptime", async () => {
      // A container no one has read before, with one busy loop: the first read of its loadavg
      // samples it at once and seeds all three averages with that count (1, or 2 if its shell
      // happens to be runnable too), so they print equal: "1.00 1.00 1.00". The host's three
      // averages are never that. A sampling tick between the reads may move them: each tool
      // must print the values of the read just before or just after it.
      const out = ok(await inside(fresh, [
        'sh -c "while :; do :; done" & loop=$!',
        'sleep 0.3',
        'cat /proc/loadavg; echo ===; uptime; echo ===; top -bn1 | head -1; echo ===; cat /proc/loadavg; echo ===; cat /proc/uptime',
        'kill -9 $loop',
      ].join('\n')));
      const [beforeText, uptimeText, topText, afterText, procUptime] = out.split('===\n');
      const before = parseLoadavg(beforeText);
      const after = parseLoadavg(afterText);
      expect(before.printed[0], beforeText).toMatch(/^[12]\.00$/);
      expect(before.printed[1]).toBe(before.printed[0]);
      expect(before.printed[2]).toBe(before.printed[0]);
      expect([before.printed, after.printed]).toContainEqual(loadAverageOfTool(uptimeText));
      expect([before.printed, after.printed]).toContainEqual(loadAverageOfTool(topText));

      // The container's first process started a moment ago: "up 0 min", not the host's hours.
      expect(uptimeText).toMatch(/ up 0 min,/);
      expect(topText).toMatch(/ up 0 min,/);
      const m = /^(\d+\.\d\d) (\d+\.\d\d)\n$/.exec(procUptime);
      expect(m, procUptime).not.toBeNull();
      const [uptimeSec, idleSec] = [Number(m![1]), Number(m![2])];
      expect(uptimeSec).toBeLessThan(30);
      // Idle is summed over the container's CPUs, as the kernel sums it over the host's.
      expect(idleSec).toBeGreaterThanOrEqual(0);
      expect(idleSec).toBeLessThanOrEqual(uptimeSec * c.cpus + 0.01);
    });
  });
});
