// cgroup v1 cpuset, cpu (CFS bandwidth) and cpuacct controllers -> CpuLimits / CpuUsage.
import { CgroupParseError } from '../snapshot';
import type { CpuUsage } from '../snapshot';
import { MAX_CPU_COUNT } from '../cpulist';
import {
  leastUpTree,
  parseDecimal,
  parseSingleValue,
  parseUnsigned,
  readFirstCpuset,
  readFlatKeyed,
  readOptionalFile,
  shown,
} from '../parse';
import { atLeastZero } from '../bigints';
import { readLimitFile } from '../limitCache';

/** Effective cpuset of the v1 cpuset cgroup at `dir` (cpuset.effective_cpus; older kernels
 *  cpuset.cpus); null = no cpuset file (or empty). */
export function readV1CpusetCpus(dir: string, cpuCountLimit?: number): number[] | null {
  return readFirstCpuset([[dir, 'cpuset.effective_cpus'], [dir, 'cpuset.cpus']], cpuCountLimit);
}

/** Tightest CFS quota (cfs_quota_us / cfs_period_us), in CPUs, of `dir` and its ancestors up to
 *  `root`; null = none. */
export function readV1QuotaCpus(dir: string, root: string): number | null {
  return leastUpTree(dir, root, (level) => {
    const quotaUs = readLimitValue(level, dir, 'cpu.cfs_quota_us');
    if (quotaUs === null || quotaUs < 0n) return null; // no CFS bandwidth support / -1 = unlimited
    const periodUs = readLimitValue(level, dir, 'cpu.cfs_period_us');
    if (periodUs === null || periodUs <= 0n) {
      throw new CgroupParseError(level, 'cpu.cfs_period_us', 'missing or zero while a quota is set');
    }
    return Number(quotaUs) / Number(periodUs); // small numbers: exact enough as doubles
  });
}

/** A single-value limit file of `level` (an ancestor's shared for a while: limitCache.ts). */
function readLimitValue(level: string, self: string, file: string): bigint | null {
  const text = readLimitFile(level, self, file);
  return text === null ? null : parseSingleValue(text, level, file);
}

/**
 * CPU time of the v1 cpuacct cgroup at `dir`, per CPU: cpuacct.usage_all (4.7+), else
 * usage_percpu_user/_sys, else usage_percpu split by cpuacct.stat; null when none exists.
 * CPU ids are checked against `cpuCountLimit` before they index anything.
 */
export function readV1CpuUsage(dir: string, cpuCountLimit = MAX_CPU_COUNT): CpuUsage | null {
  const perCpu =
    readUsageAll(dir, cpuCountLimit) ??
    readPercpuUserSys(dir, cpuCountLimit) ??
    readPercpuSplitByStat(dir, cpuCountLimit);
  if (perCpu === null) return null;
  let userNs = 0n;
  let systemNs = 0n;
  for (const cpu of perCpu) {
    userNs += cpu.userNs;
    systemNs += cpu.systemNs;
  }
  return { userNs, systemNs, perCpu };
}

type PerCpu = { userNs: bigint; systemNs: bigint }[];

function readUsageAll(dir: string, cpuCountLimit: number): PerCpu | null {
  const file = 'cpuacct.usage_all';
  const text = readOptionalFile(dir, file);
  if (text === null) return null;
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines[0]?.trim().split(/\s+/).join(' ') !== 'cpu user system') {
    throw new CgroupParseError(dir, file, `no "cpu user system" header: ${shown(lines[0] ?? '')}`);
  }
  const perCpu: PerCpu = [];
  for (const line of lines.slice(1)) {
    const [cpu, user, system, ...rest] = line.trim().split(/\s+/);
    if (cpu === undefined || user === undefined || system === undefined || rest.length > 0) {
      throw new CgroupParseError(dir, file, `line is not "cpu user system": ${shown(line)}`);
    }
    const cpuId = cpuIdIn(cpu, dir, file, cpuCountLimit);
    if (perCpu[cpuId] !== undefined) throw new CgroupParseError(dir, file, `cpu ${cpuId} appears twice`);
    perCpu[cpuId] = {
      userNs: parseUnsigned(user, dir, file, `cpu ${cpuId} user`),
      systemNs: parseUnsigned(system, dir, file, `cpu ${cpuId} system`),
    };
  }
  return fillGaps(perCpu);
}

/** A CPU id token as an index: a non-negative integer below `cpuCountLimit`, else an error. */
function cpuIdIn(token: string, dir: string, file: string, cpuCountLimit: number): number {
  const id = parseDecimal(token, dir, file, 'cpu id');
  if (id < 0n || id >= BigInt(cpuCountLimit)) {
    throw new CgroupParseError(dir, file, `cpu id ${id} out of range (the host has at most ${cpuCountLimit} CPUs)`);
  }
  return Number(id);
}

/** Possible CPUs are numbered densely, but be safe: a missing id counts as idle (0 ns). */
function fillGaps(perCpu: PerCpu): PerCpu {
  return Array.from(perCpu, (cpu) => cpu ?? { userNs: 0n, systemNs: 0n });
}

/** One value per possible CPU: more values than the host can have CPUs is a malformed file. */
function readValueList(dir: string, file: string, cpuCountLimit: number): bigint[] | null {
  const text = readOptionalFile(dir, file);
  if (text === null) return null;
  const tokens = text.trim().split(/\s+/).filter(Boolean);
  if (tokens.length > cpuCountLimit) {
    throw new CgroupParseError(dir, file, `${tokens.length} values, but the host has at most ${cpuCountLimit} CPUs`);
  }
  return tokens.map((token, i) => parseUnsigned(token, dir, file, `cpu ${i}`));
}

function readPercpuUserSys(dir: string, cpuCountLimit: number): PerCpu | null {
  const user = readValueList(dir, 'cpuacct.usage_percpu_user', cpuCountLimit);
  const system = readValueList(dir, 'cpuacct.usage_percpu_sys', cpuCountLimit);
  if (user === null || system === null) return null;
  if (user.length !== system.length) {
    const why = `${system.length} CPUs, but cpuacct.usage_percpu_user has ${user.length}`;
    throw new CgroupParseError(dir, 'cpuacct.usage_percpu_sys', why);
  }
  return user.map((userNs, i) => ({ userNs, systemNs: system[i] }));
}

/** Kernels before 4.7 split user/system only over all CPUs (cpuacct.stat, in ticks): we split
 *  each CPU's total by that ratio, so the totals stay exact. */
function readPercpuSplitByStat(dir: string, cpuCountLimit: number): PerCpu | null {
  const totals = readValueList(dir, 'cpuacct.usage_percpu', cpuCountLimit);
  const stat = readFlatKeyed(dir, 'cpuacct.stat');
  if (totals === null || stat === null) return null;
  const userTicks = atLeastZero(stat.get('user') ?? 0n);
  const systemTicks = atLeastZero(stat.get('system') ?? 0n);
  const ticks = userTicks + systemTicks;
  return totals.map((totalNs) => {
    // No ticks yet: call it all user time rather than divide by zero.
    const userNs = ticks > 0n ? (totalNs * userTicks) / ticks : totalNs;
    return { userNs, systemNs: totalNs - userNs };
  });
}

/** cpuacct.usage as read (total ns, itself and below): a mark that changes whenever a task of
 *  the cgroup runs (loadavg/sampler.ts); null when absent. */
export function readV1CpuTimeMark(dir: string): string | null {
  return readOptionalFile(dir, 'cpuacct.usage');
}
