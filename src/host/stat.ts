/**
 * Parse the host's /proc/stat (fs/proc/stat.c): the aggregate "cpu  u n s ..." line (two
 * spaces after "cpu"), one "cpuN u n s ..." line per online CPU, then every other line
 * (intr, ctxt, btime, processes, procs_running, procs_blocked, softirq) kept verbatim.
 *
 * Tick columns, in USER_HZ: user nice system idle iowait irq softirq steal guest guest_nice.
 * Linux 2.6.33+ prints all 10; older kernels print fewer (4 on 2.4, 7/8/9 on early 2.6), so
 * missing columns read as 0 and `cpuFieldCount` says how many the host prints.
 */
import { CgroupParseError } from '../cgroup/snapshot';
import { readBoundedText } from './boundedRead';
import { MAX_CPU_COUNT } from '../cgroup/cpulist';
import type { HostStat, StatCpuTicks } from './snapshot';
import { shown } from '../cgroup/parse';

/** The tick columns in the kernel's order. */
export const STAT_CPU_FIELDS = [
  'user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal', 'guest', 'guestNice',
] as const satisfies ReadonlyArray<keyof StatCpuTicks>;

const MIN_CPU_FIELDS = 4; // Linux 2.4: user nice system idle
// Values at most 20 digits (u64); a cpu id is an index, checked against MAX_CPU_COUNT.
const CPU_LINE = /^cpu(\d{0,5}) +(\d{1,20}(?: \d{1,20})*)$/;

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
      if (match === null) throw fail(`line ${i + 1} is not a cpu line: ${shown(line)}`);
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
        if (cpuId >= MAX_CPU_COUNT) throw fail(`line ${i + 1}: cpu${cpuId} is past the kernel's ${MAX_CPU_COUNT} CPUs`);
        if (perCpu.has(cpuId)) throw fail(`line ${i + 1}: cpu${cpuId} appears twice`);
        perCpu.set(cpuId, ticks);
      }
      continue;
    }
    const space = line.indexOf(' ');
    if (space <= 0) throw fail(`line ${i + 1} is not "key values": ${shown(line)}`);
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

/** Read and parse /proc/stat (bounded and non-blocking: boundedRead.ts). */
export function readHostStat(procDir = '/proc'): HostStat {
  return parseStat(readBoundedText(procDir, 'stat'), procDir);
}
