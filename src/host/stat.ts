/**
 * Parse the host's /proc/stat (fs/proc/stat.c): the aggregate "cpu  u n s ..." line (two
 * spaces after "cpu"), one "cpuN u n s ..." line per online CPU, then every other line
 * (intr, ctxt, btime, processes, procs_running, procs_blocked, softirq) kept verbatim.
 *
 * Tick columns, in USER_HZ: user nice system idle iowait irq softirq steal guest guest_nice.
 * Linux 2.6.33+ prints all 10; older kernels print fewer (4 on 2.4, 7/8/9 on early 2.6), so
 * missing columns read as 0 and `cpuFieldCount` says how many the host prints.
 */
import { readFileSync } from 'node:fs';
import { CgroupParseError } from '../cgroup/snapshot';
import type { HostStat, StatCpuTicks } from './snapshot';

/** The tick columns in the kernel's order. */
export const STAT_CPU_FIELDS = [
  'user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal', 'guest', 'guestNice',
] as const satisfies ReadonlyArray<keyof StatCpuTicks>;

const MIN_CPU_FIELDS = 4; // Linux 2.4: user nice system idle
const CPU_LINE = /^cpu(\d*) +(\d+(?: \d+)*)$/;

/** `procDir` only names the file in errors (a CgroupParseError naming the directory and file). */
export function parseStat(text: string, procDir = '/proc'): HostStat {
  const fail = (reason: string) => new CgroupParseError(procDir, 'stat', reason);
  let total: StatCpuTicks | null = null;
  let cpuFieldCount = 0;
  const perCpu = new Map<number, StatCpuTicks>();
  const otherLines: Array<[string, string]> = [];

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    if (line.startsWith('cpu')) {
      const match = CPU_LINE.exec(line);
      if (match === null) throw fail(`line ${i + 1} is not a cpu line: ${JSON.stringify(line.slice(0, 80))}`);
      const values = match[2]!.split(' ').map((v) => BigInt(v));
      if (values.length < MIN_CPU_FIELDS || values.length > STAT_CPU_FIELDS.length) {
        throw fail(`line ${i + 1} has ${values.length} tick columns, expected ${MIN_CPU_FIELDS}..${STAT_CPU_FIELDS.length}`);
      }
      if (cpuFieldCount === 0) cpuFieldCount = values.length;
      else if (values.length !== cpuFieldCount) {
        throw fail(`line ${i + 1} has ${values.length} tick columns, the lines before it ${cpuFieldCount}`);
      }
      const ticks = toTicks(values);
      if (match[1] === '') {
        if (total !== null) throw fail(`line ${i + 1}: a second aggregate cpu line`);
        total = ticks;
      } else {
        const cpuId = Number(match[1]);
        if (perCpu.has(cpuId)) throw fail(`line ${i + 1}: cpu${cpuId} appears twice`);
        perCpu.set(cpuId, ticks);
      }
      continue;
    }
    const space = line.indexOf(' ');
    if (space <= 0) throw fail(`line ${i + 1} is not "key values": ${JSON.stringify(line.slice(0, 80))}`);
    otherLines.push([line.slice(0, space), line.slice(space + 1)]);
  }

  if (total === null) throw fail('no aggregate "cpu" line');
  return { total, perCpu, otherLines, cpuFieldCount };
}

function toTicks(values: bigint[]): StatCpuTicks {
  const at = (i: number) => values[i] ?? 0n;
  return {
    user: at(0), nice: at(1), system: at(2), idle: at(3), iowait: at(4),
    irq: at(5), softirq: at(6), steal: at(7), guest: at(8), guestNice: at(9),
  };
}

/**
 * Read and parse /proc/stat. Synchronous on purpose: procfs never blocks on disk, and a sync
 * read is ~10x cheaper than a trip through libuv's thread pool.
 */
export function readHostStat(procDir = '/proc'): HostStat {
  return parseStat(readFileSync(`${procDir}/stat`, 'utf8'), procDir);
}
