// The host's /proc/stat: the aggregate "cpu" line, one "cpuN" line per online CPU, every other
// line kept verbatim. Kernels before 2.6.33 print fewer than 10 tick columns: missing ones read
// as 0, and `cpuFieldCount` remembers how many to print back.
import { CgroupParseError } from '../cgroup/snapshot';
import { readBoundedText } from './boundedRead';
import { MAX_CPU_COUNT } from '../cgroup/cpulist';
import type { HostStat, StatCpuTicks } from './snapshot';
import { type FileLine, forEachLine } from '../cgroup/parse';

/** The tick columns in the kernel's order. */
export const STAT_CPU_FIELDS = [
  'user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal', 'guest', 'guestNice',
] as const satisfies ReadonlyArray<keyof StatCpuTicks>;

const MIN_CPU_FIELDS = 4; // Linux 2.4: user nice system idle
// Values at most 20 digits (u64); a cpu id is an index, checked against MAX_CPU_COUNT.
const CPU_LINE = /^cpu(\d{0,5}) +(\d{1,20}(?: \d{1,20})*)$/;

/** `procDir` only names the file in errors. */
export function parseStat(text: string, procDir = '/proc'): HostStat {
  let total: StatCpuTicks | null = null;
  let cpuFieldCount = 0;
  const perCpu = new Map<number, StatCpuTicks>();
  const otherLines: [string, string][] = [];

  forEachLine(text, procDir, 'stat', (line) => {
    if (!line.text.startsWith('cpu')) {
      otherLines.push(otherLine(line));
      return;
    }
    const { cpuDigits, values } = cpuLine(line);
    if (cpuFieldCount === 0) cpuFieldCount = values.length;
    else if (values.length !== cpuFieldCount) {
      throw line.fail(`${values.length} tick columns, the lines before it ${cpuFieldCount}`);
    }
    const ticks = toTicks(values);
    if (cpuDigits === '') {
      if (total !== null) throw line.fail('a second aggregate cpu line');
      total = ticks;
      return;
    }
    const cpuId = Number(cpuDigits);
    if (cpuId >= MAX_CPU_COUNT) throw line.fail(`cpu${cpuId} is past the kernel's ${MAX_CPU_COUNT} CPUs`);
    if (perCpu.has(cpuId)) throw line.fail(`cpu${cpuId} appears twice`);
    perCpu.set(cpuId, ticks);
  });

  if (total === null) throw new CgroupParseError(procDir, 'stat', 'no aggregate "cpu" line');
  return { total, perCpu, otherLines, cpuFieldCount };
}

/** A line other than cpu's, as [its first word, the rest]. */
function otherLine(line: FileLine): [string, string] {
  const space = line.text.indexOf(' ');
  if (space <= 0) throw line.notA('"key values"');
  return [line.text.slice(0, space), line.text.slice(space + 1)];
}

/** A "cpu" or "cpuN" line: N's digits ("" for the aggregate) and the tick columns. */
function cpuLine(line: FileLine): { cpuDigits: string; values: bigint[] } {
  const match = CPU_LINE.exec(line.text);
  if (match === null) throw line.notA('a cpu line');
  const values = match[2].split(' ').map((v) => BigInt(v));
  if (values.length < MIN_CPU_FIELDS || values.length > STAT_CPU_FIELDS.length) {
    throw line.fail(`${values.length} tick columns, expected ${MIN_CPU_FIELDS}..${STAT_CPU_FIELDS.length}`);
  }
  return { cpuDigits: match[1], values };
}

function toTicks(values: bigint[]): StatCpuTicks {
  const at = (i: number) => values[i] ?? 0n;
  return {
    user: at(0), nice: at(1), system: at(2), idle: at(3), iowait: at(4),
    irq: at(5), softirq: at(6), steal: at(7), guest: at(8), guestNice: at(9),
  };
}

export function readHostStat(procDir = '/proc'): HostStat {
  return parseStat(readBoundedText(procDir, 'stat'), procDir);
}
