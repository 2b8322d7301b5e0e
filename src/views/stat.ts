// /proc/stat for a container: one cpuN line per visible CPU, renumbered like cpuinfo, carrying
// the cgroup's CPU time. Columns grow by deltas since the previous read of the same container
// (the caller keeps the returned StatHistory), so none ever goes backwards; the splitting of the
// cgroup's time over rows, idle and the other lines: docs/views.md#stat.
import type { CpuUsage, TaskCounts } from '../cgroup/snapshot';
import type { HostStat, StatCpuTicks } from '../host/snapshot';
import { STAT_CPU_FIELDS } from '../host/stat';
import { atLeastZero, maxBig, splitByWeight } from '../cgroup/bigints';

export interface StatInput {
  host: HostStat;
  /** Host CPU ids shown, ascending (visibleCpus): row i is host CPU visible[i]. */
  visible: number[];
  /** The cgroup's CPU time; null = unknown (then the host's columns for the shown CPUs). */
  usage: CpuUsage | null;
  /** The cgroup's task states; null = unknown (then the host's procs_* lines). */
  tasks: TaskCounts | null;
  /** USER_HZ, the unit of /proc/stat (100 on Linux). */
  userHz: number;
  /** What the previous render for this container returned; null for the first one. */
  previous: StatHistory | null;
}

/** What a render must remember for the next one of the same container. Treat as opaque. */
export interface StatHistory {
  /** Every row ever shown, by row number; rows at or past the current count are frozen. */
  readonly rows: readonly StatRow[];
  /** The aggregate "cpu" line as last emitted. */
  readonly aggregate: StatCpuTicks;
  /** Per host CPU id: the host's counters accounted so far (high-water marks). */
  readonly host: ReadonlyMap<number, HostCpuMark>;
  /** The cgroup's CPU time accounted so far, in ticks; null while usage was unknown. */
  readonly usage: UsageMark | null;
}

export interface StatRow {
  readonly ticks: StatCpuTicks;
  /** Wall-clock ticks this row has lived through: the sum of its host CPUs' total deltas. */
  readonly clockTicks: bigint;
}

export interface HostCpuMark {
  readonly ticks: StatCpuTicks;
  /** user+nice+system+idle+iowait+irq+softirq+steal: the CPU's elapsed time. */
  readonly totalTicks: bigint;
  /** user+nice+system+irq+softirq: the time the CPU did work. */
  readonly busyTicks: bigint;
}

export interface UsageMark {
  readonly userTicks: bigint;
  readonly systemTicks: bigint;
  /** Per host CPU id (v1); null when the cgroup gives totals only (v2). */
  readonly perCpu: ReadonlyArray<{ readonly userTicks: bigint; readonly systemTicks: bigint }> | null;
}

const NS_PER_SEC = 1_000_000_000n;
const DEFAULT_FIELD_COUNT = 10;
const ZERO_TICKS: StatCpuTicks = {
  user: 0n, nice: 0n, system: 0n, idle: 0n, iowait: 0n, irq: 0n, softirq: 0n, steal: 0n, guest: 0n, guestNice: 0n,
};
const ZERO_MARK: HostCpuMark = { ticks: ZERO_TICKS, totalTicks: 0n, busyTicks: 0n };

export function renderStat(input: StatInput): { text: string; history: StatHistory } {
  const { host, visible, previous } = input;
  if (visible.length === 0) throw new Error('cannot render /proc/stat for 0 CPUs');
  if (!Number.isInteger(input.userHz) || input.userHz <= 0) throw new Error(`bad USER_HZ ${input.userHz}`);
  const userHz = BigInt(input.userHz);

  const hostStep = stepHost(host, previous);
  const usageStep = input.usage === null ? null : stepUsage(input.usage, userHz, visible, previous);
  const previousRows = previous?.rows ?? [];
  const deltas = visible.map((id) => hostStep.deltas.get(id) ?? NO_DELTA);
  const cgroupTicks = usageStep === null ? deltas.map(() => null) : cgroupTicksPerRow(usageStep, deltas);
  const shown = deltas.map((delta, row) => nextRow(previousRows[row] ?? NEW_ROW, delta, cgroupTicks[row]));
  // Rows no longer shown stay, frozen, like offline CPUs: they still count in the aggregate.
  const rows = [...shown, ...previousRows.slice(shown.length)];

  const summed = { ...ZERO_TICKS };
  for (const r of rows) for (const field of STAT_CPU_FIELDS) summed[field] += r.ticks[field];
  const aggregate = clampUp(previous?.aggregate ?? ZERO_TICKS, summed);

  const fieldCount = host.cpuFieldCount ?? DEFAULT_FIELD_COUNT;
  let text = `cpu  ${formatTicks(aggregate, fieldCount)}\n`;
  for (const [row, r] of shown.entries()) text += `cpu${row} ${formatTicks(r.ticks, fieldCount)}\n`;
  for (const [key, rest] of host.otherLines) text += `${key} ${otherLineValue(key, rest, input.tasks)}\n`;

  return {
    text,
    history: { rows, aggregate, host: hostStep.marks, usage: usageStep?.mark ?? null },
  };
}

const NEW_ROW: StatRow = { ticks: ZERO_TICKS, clockTicks: 0n };

/** The cgroup's time per shown row in this interval: its own CPU's, plus time from CPUs not
 *  shown (or all of it, v2) spread by host busy time, within each row's free time. */
function cgroupTicksPerRow(usageStep: UsageStep, deltas: HostDelta[]): CgroupTicks[] {
  const own = usageStep.own;
  const capacity = own.map((o, row) => atLeastZero(deltas[row].totalTicks - deltas[row].ticks.steal - o.userTicks - o.systemTicks));
  const folded = fillByWeight(usageStep.poolUser + usageStep.poolSystem, deltas.map((d) => d.busyTicks), capacity);
  const foldedSystem = splitByWeight(usageStep.poolSystem, folded);
  return own.map((o, row) => ({
    userTicks: o.userTicks + folded[row] - foldedSystem[row],
    systemTicks: o.systemTicks + foldedSystem[row],
  }));
}

interface CgroupTicks {
  userTicks: bigint;
  systemTicks: bigint;
}

/** A shown row after this interval: the cgroup's time added (null = unknown: the host CPU's
 *  columns instead), and idle recomputed. */
function nextRow(before: StatRow, delta: HostDelta, cgroup: CgroupTicks | null): StatRow {
  const clockTicks = before.clockTicks + delta.totalTicks;
  const t = { ...before.ticks };
  if (cgroup !== null) {
    t.user += cgroup.userTicks;
    t.system += cgroup.systemTicks;
    t.steal += delta.ticks.steal; // the hypervisor took it from every container on the CPU
    // nice, iowait, irq, softirq, guest stay as they were: no cgroup accounts them.
  } else {
    // No usage figure: the host's columns of the shown CPU, as the TencentOS kernel does.
    for (const field of STAT_CPU_FIELDS) if (field !== 'idle') t[field] += delta.ticks[field];
  }
  // Idle is whatever of the row's elapsed time no other column claims; held while they run ahead.
  const claimed = t.user + t.nice + t.system + t.iowait + t.irq + t.softirq + t.steal;
  t.idle = maxBig(before.ticks.idle, clockTicks - claimed);
  return { ticks: clampUp(before.ticks, t), clockTicks };
}

function otherLineValue(key: string, hostRest: string, tasks: TaskCounts | null): string {
  if (tasks === null) return hostRest;
  // The reader is running while the kernel prints this file, so the kernel never prints 0 here.
  if (key === 'procs_running') return String(Math.max(1, tasks.running));
  if (key === 'procs_blocked') return String(tasks.blocked);
  return hostRest; // intr, ctxt, processes, softirq: no cgroup counts them; btime: ps needs the host's
}

// ---- host deltas --------------------------------------------------------------------------

interface HostDelta {
  ticks: StatCpuTicks;
  totalTicks: bigint;
  busyTicks: bigint;
}
const NO_DELTA: HostDelta = { ticks: ZERO_TICKS, totalTicks: 0n, busyTicks: 0n };

function stepHost(host: HostStat, previous: StatHistory | null): { deltas: Map<number, HostDelta>; marks: Map<number, HostCpuMark> } {
  // CPUs offline now keep their marks: the kernel keeps their counters for when they return.
  const marks = new Map<number, HostCpuMark>(previous?.host ?? []);
  const deltas = new Map<number, HostDelta>();
  for (const [id, now] of host.perCpu) {
    const nowMark: HostCpuMark = { ticks: now, totalTicks: totalOf(now), busyTicks: busyOf(now) };
    // First render: everything since boot is new. Later, a CPU seen for the first time (it came
    // online since) starts from now rather than adding its whole past to a row in one step.
    const before = previous === null ? ZERO_MARK : (previous.host.get(id) ?? nowMark);
    const after: HostCpuMark = {
      ticks: mapTicks((field) => maxBig(before.ticks[field], now[field])),
      totalTicks: maxBig(before.totalTicks, nowMark.totalTicks),
      busyTicks: maxBig(before.busyTicks, nowMark.busyTicks),
    };
    marks.set(id, after);
    deltas.set(id, {
      ticks: mapTicks((field) => after.ticks[field] - before.ticks[field]),
      totalTicks: after.totalTicks - before.totalTicks,
      busyTicks: after.busyTicks - before.busyTicks,
    });
  }
  return { deltas, marks };
}

function totalOf(t: StatCpuTicks): bigint {
  return t.user + t.nice + t.system + t.idle + t.iowait + t.irq + t.softirq + t.steal;
}

function busyOf(t: StatCpuTicks): bigint {
  return t.user + t.nice + t.system + t.irq + t.softirq;
}

// ---- cgroup usage deltas ------------------------------------------------------------------

interface UsageStep {
  mark: UsageMark;
  /** Per shown row: the time its own host CPU ran the container (v1); 0 on v2. */
  own: CgroupTicks[];
  /** Time to fold into the shown rows: on host CPUs not shown (v1), or all of it (v2). */
  poolUser: bigint;
  poolSystem: bigint;
}

function stepUsage(usage: CpuUsage, userHz: bigint, visible: number[], previous: StatHistory | null): UsageStep {
  const toTicks = (ns: bigint) => (ns * userHz) / NS_PER_SEC; // floor of the cumulative: no drift
  // No history: everything the cgroup ever used is new. History without a usage mark (usage was
  // unknown until now): start counting from now, the rows already hold the host's columns.
  const firstRender = previous === null;
  const before = previous?.usage ?? null;
  const own = visible.map(() => ({ userTicks: 0n, systemTicks: 0n }));

  if (usage.perCpu === null) {
    const userTicks = toTicks(usage.userNs);
    const systemTicks = toTicks(usage.systemNs);
    let baseline = { userTicks, systemTicks }; // no comparable mark: nothing new yet
    if (firstRender) baseline = { userTicks: 0n, systemTicks: 0n };
    else if (before !== null && before.perCpu === null) baseline = before;
    return {
      mark: { userTicks, systemTicks, perCpu: null },
      own,
      poolUser: counterDelta(baseline.userTicks, userTicks),
      poolSystem: counterDelta(baseline.systemTicks, systemTicks),
    };
  }

  const rowOf = new Map(visible.map((id, row) => [id, row] as const));
  const perCpu = usage.perCpu.map((cpu) => ({ userTicks: toTicks(cpu.userNs), systemTicks: toTicks(cpu.systemNs) }));
  let poolUser = 0n;
  let poolSystem = 0n;
  let userTotal = 0n;
  let systemTotal = 0n;
  perCpu.forEach((now, id) => {
    userTotal += now.userTicks;
    systemTotal += now.systemTicks;
    const then = firstRender ? { userTicks: 0n, systemTicks: 0n } : (before?.perCpu?.[id] ?? now);
    const userDelta = counterDelta(then.userTicks, now.userTicks);
    const systemDelta = counterDelta(then.systemTicks, now.systemTicks);
    const row = rowOf.get(id);
    if (row === undefined) {
      poolUser += userDelta;
      poolSystem += systemDelta;
    } else {
      own[row] = { userTicks: userDelta, systemTicks: systemDelta };
    }
  });
  return { mark: { userTicks: userTotal, systemTicks: systemTotal, perCpu }, own, poolUser, poolSystem };
}

/** A cgroup counter that fell was reset (recreated cgroup): count from its new value, add 0 now. */
function counterDelta(before: bigint, now: bigint): bigint {
  return atLeastZero(now - before);
}

// ---- integer splitting --------------------------------------------------------------------

/**
 * Pour `pool` into rows by `weights`, no row past its `capacity`; a full row drops out and the
 * rest is shared again ("water filling"). What exceeds every capacity is still given out by
 * weight: the cgroup's time is conserved, and idle (held, never lowered) absorbs the overshoot.
 */
export function fillByWeight(pool: bigint, weights: bigint[], capacity: bigint[]): bigint[] {
  const shares = weights.map(() => 0n);
  let remaining = pool;
  let open = capacity.map((_, row) => row).filter((row) => capacity[row] > 0n);
  while (remaining > 0n && open.length > 0) {
    const openWeights = open.map((row) => weights[row]);
    // No busy time anywhere to go by: fill by free room instead.
    const useRoom = openWeights.every((w) => w === 0n);
    const offered = splitByWeight(remaining, useRoom ? open.map((row) => capacity[row] - shares[row]) : openWeights);
    const overflowing = open.filter((row, k) => shares[row] + offered[k] > capacity[row]);
    if (overflowing.length === 0) {
      for (const [k, row] of open.entries()) shares[row] += offered[k];
      remaining = 0n;
      break;
    }
    for (const row of overflowing) {
      remaining -= capacity[row] - shares[row];
      shares[row] = capacity[row];
    }
    open = open.filter((row) => !overflowing.includes(row));
  }
  if (remaining > 0n) {
    const extra = splitByWeight(remaining, weights);
    for (const [row, e] of extra.entries()) shares[row] += e;
  }
  return shares;
}

// ---- small helpers ------------------------------------------------------------------------

function mapTicks(f: (field: keyof StatCpuTicks) => bigint): StatCpuTicks {
  const t = { ...ZERO_TICKS };
  for (const field of STAT_CPU_FIELDS) t[field] = f(field);
  return t;
}

/** Every column at least its previous value: the invariant every reader of /proc/stat assumes. */
function clampUp(before: StatCpuTicks, now: StatCpuTicks): StatCpuTicks {
  return mapTicks((field) => maxBig(before[field], now[field]));
}

function formatTicks(t: StatCpuTicks, fieldCount: number): string {
  return STAT_CPU_FIELDS.slice(0, fieldCount).map((field) => t[field]).join(' ');
}
