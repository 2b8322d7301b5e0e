/**
 * The CPU views end to end: real cgroups beneath our own (a cpuset of one CPU; a CFS quota of
 * 0.5 CPU), the real mount, and real tools in private mount + pid namespaces with every served
 * file bound over /proc/... and /sys/devices/system/cpu/online. (free, top, vmstat and uptime
 * under a quota: tools.test.ts.)
 */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPLICE_VIA_PAGE_CACHE } from '../helpers/kernel';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { runInContainer, type RunResult } from '../helpers/container';
import { firstBackwardStep, ok, statCpuLines } from '../helpers/procText';

const MIB = 1024n * 1024n;
const HOST_CPUS = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length;
const HOST_ONLINE = fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
const NODE = process.execPath;
const USER_HZ = 100;

/** The 50 reads of a `for` loop that prints /proc/stat and "===" each time. */
function statReads(out: string): Map<string, bigint[]>[] {
  return out.split('===\n').filter((t) => t.trim() !== '').map(statCpuLines);
}

describe('CPU views with real tools', () => {
  let daemon: DaemonHandle;
  let oneCpu: TestCgroup; // cpuset "1" (or "0" on a 1-CPU host), 256 MiB
  let halfCpu: TestCgroup; // quota 0.5 CPU, no cpuset
  const cpusetCpu = HOST_CPUS > 1 ? '1' : '0';

  beforeAll(async () => {
    daemon = await startDaemon();
    oneCpu = createTestCgroup('cpu-one', { cpus: cpusetCpu, memoryLimitBytes: 256n * MIB });
    halfCpu = createTestCgroup('cpu-half', { cpuQuotaUs: 50_000, cpuPeriodUs: 100_000 });
  });

  afterAll(async () => {
    await daemon?.cleanup();
    for (const cg of [oneCpu, halfCpu]) await cg?.remove();
  });

  const inside = (cg: TestCgroup, cmd: string): Promise<RunResult> => runInContainer(cg, { mountpoint: daemon.mountpoint }, cmd);

  it('a cpuset of one CPU: getconf, nproc, node, cpuinfo, online and stat all say 1', async () => {
    const out = ok(await inside(oneCpu, [
      'getconf _NPROCESSORS_ONLN',
      // nproc asks sched_getaffinity, which the kernel already bounds by the cpuset.
      'nproc',
      `${NODE} -e "const os = require('os'); console.log(os.cpus().length, os.totalmem())"`,
      'grep -c ^processor /proc/cpuinfo',
      'cat /sys/devices/system/cpu/online',
      "grep -c '^cpu[0-9]' /proc/stat",
      "grep '^cpu[0-9]' /proc/stat | cut -d' ' -f1",
    ].join('; ')));
    expect(out.split('\n')).toEqual(['1', '1', `1 ${256n * MIB}`, '1', '0', '1', 'cpu0', '']);
  });

  it('keeps the host block of the CPU it shows, renumbered from 0, with consistent siblings', async () => {
    const text = ok(await inside(oneCpu, 'cat /proc/cpuinfo'));
    const hostBlocks = fs.readFileSync('/proc/cpuinfo', 'utf8').trim().split('\n\n');
    const hostBlock = hostBlocks[Number(cpusetCpu)];
    const blocks = text.trim().split('\n\n');
    expect(blocks).toHaveLength(1);
    expect(blocks[0]).toMatch(/^processor\t: 0$/m);
    expect(/^model name.*$/m.exec(blocks[0])?.[0]).toBe(/^model name.*$/m.exec(hostBlock)?.[0]);
    // Where the host block has topology counts (x86; arm64 has none), they say 1 CPU.
    const topology = (block: string): string[] => block.match(/^(siblings|cpu cores)\t: .*$/gm) ?? [];
    expect(topology(blocks[0])).toEqual(/^siblings/m.test(hostBlock) ? ['siblings\t: 1', 'cpu cores\t: 1'] : []);
  });

  it("a quota of 0.5 CPU shows 1 CPU; a reader outside any limit sees the host's CPUs", async () => {
    expect(ok(await inside(halfCpu, "getconf _NPROCESSORS_ONLN; grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online; grep -c '^cpu[0-9]' /proc/stat")))
      .toBe('1\n1\n0\n1\n');
    // The host reader (our own process, in the root cpu cgroup) still sees every CPU.
    expect(fs.readFileSync(`${daemon.mountpoint}/sys/devices/system/cpu/online`, 'utf8').trim()).toBe(HOST_ONLINE);
  });

  it("busybox cat (sendfile) of a shared file: the reader's own bytes or nothing, never another reader's", async () => {
    // A shared file's content depends on its reader, so none of it may sit in a page cache that
    // another reader's splice/sendfile/mmap could see. Kernels >= 6.5 splice through the page
    // cache (size 0: an empty file); older ones through our READ (the reader's own bytes).
    // Per-container files (the container-views tree) give page-cache readers their bytes
    // (hostile.test.ts). Alternate readers whose files differ: a 1-CPU container and the host.
    const own = (plain: string): string => (SPLICE_VIA_PAGE_CACHE ? '' : plain);
    for (let i = 0; i < 3; i++) {
      const inContainer = ok(await inside(oneCpu, 'busybox cat /proc/cpuinfo; echo ===; cat /proc/cpuinfo; echo ===; busybox cat /proc/meminfo; echo ===; cat /proc/meminfo'));
      const [bbCpu, cpu, bbMem, mem] = inContainer.split('===\n');
      expect(cpu.match(/^processor/gm)).toHaveLength(1);
      // (cpuinfo's MHz lines move between two reads: compare the CPUs shown, not every byte)
      expect(bbCpu.match(/^processor/gm) ?? []).toHaveLength(SPLICE_VIA_PAGE_CACHE ? 0 : 1);
      expect(bbCpu === '', 'busybox cat read an empty file').toBe(SPLICE_VIA_PAGE_CACHE);
      expect(mem.split('\n')[0]).toMatch(/^MemTotal:\s+262144 kB$/);
      expect(bbMem.split('\n')[0]).toBe(own(mem).split('\n')[0]);
      const hostView = execFileSync('busybox', ['cat', `${daemon.mountpoint}/proc/cpuinfo`], { encoding: 'utf8' });
      const hostPlain = fs.readFileSync(`${daemon.mountpoint}/proc/cpuinfo`, 'utf8');
      expect(hostPlain.match(/^processor/gm)).toHaveLength(HOST_CPUS);
      expect(hostView.match(/^processor/gm) ?? []).toHaveLength(SPLICE_VIA_PAGE_CACHE ? 0 : HOST_CPUS);
    }
  });

  it('/proc/stat read 50 times in a row (CPU work between reads) never goes backwards in any column', async () => {
    const out = ok(await inside(oneCpu,
      'for i in $(seq 50); do cat /proc/stat; echo ===; n=0; while [ $n -lt 3000 ]; do n=$((n+1)); done; done'));
    const reads = statReads(out);
    expect(reads).toHaveLength(50);
    expect([...reads[0].keys()]).toEqual(['cpu', 'cpu0']);
    expect(firstBackwardStep(reads)).toBeNull();
    // The shell's loop ran inside: the container's user+system time advanced.
    const first = reads[0].get('cpu')!;
    const last = reads.at(-1)!.get('cpu')!;
    expect(last[0] + last[2]).toBeGreaterThan(first[0] + first[2]);
  });

  it('/proc/stat under a throttled 0.5-CPU quota: 50 reads never go backwards, and show about half a CPU busy', async () => {
    // Two busy loops want 2 CPUs and get 0.5: the container is throttled every period. (LXCFS
    // lowers idle on purpose under a quota, and its users see idle run backwards.)
    const out = ok(await inside(halfCpu, [
      'sh -c "while :; do :; done" & a=$!',
      'sh -c "while :; do :; done" & b=$!',
      'sleep 0.5',
      'for i in $(seq 50); do cat /proc/stat; echo ===; sleep 0.05; done',
      'kill -9 $a $b',
    ].join('\n')));
    const reads = statReads(out);
    expect(reads).toHaveLength(50);
    expect([...reads[0].keys()]).toEqual(['cpu', 'cpu0']);
    expect(firstBackwardStep(reads)).toBeNull();

    // Over the reads, the aggregate line's columns advance with the wall clock of its one CPU,
    // and user+system take the share the quota allows (0.5; a little less on a crowded machine).
    const sum = (fields: bigint[]) => fields.slice(0, 8).reduce((a, b) => a + b, 0n);
    const first = reads[0].get('cpu')!;
    const last = reads.at(-1)!.get('cpu')!;
    const elapsedTicks = Number(sum(last) - sum(first));
    const busyTicks = Number(last[0] + last[2] - first[0] - first[2]);
    expect(elapsedTicks).toBeGreaterThan(2.5 * USER_HZ); // 50 x 0.05 s of sleep at least
    const busyShare = busyTicks / elapsedTicks;
    expect(busyShare, `${busyTicks} busy of ${elapsedTicks} ticks`).toBeGreaterThan(0.25);
    expect(busyShare, `${busyTicks} busy of ${elapsedTicks} ticks`).toBeLessThan(0.65);
  });
});
