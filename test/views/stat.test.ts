import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CpuUsage, TaskCounts } from '../../src/cgroup/snapshot';
import type { HostStat, StatCpuTicks } from '../../src/host/snapshot';
import { parseStat, STAT_CPU_FIELDS } from '../../src/host/stat';
import { fillByWeight, renderStat, type StatHistory, type StatInput } from '../../src/views/stat';

const fixture = (name: string) => readFileSync(path.join(__dirname, '../fixtures/proc', name), 'utf8');

/** A 4-CPU host: cpu2 is the busiest, cpu3 the idlest; every CPU has some steal. */
const HOST_4 = parseStat(fixture('stat-4cpu'));
const NS_PER_TICK = 10_000_000n; // USER_HZ 100

const TASKS: TaskCounts = { running: 2, blocked: 1, total: 40, truncated: false };

function input(overrides: Partial<StatInput>): StatInput {
  return { host: HOST_4, visible: [0, 1, 2, 3], usage: null, tasks: TASKS, userHz: 100, previous: null, ...overrides };
}

/** v1 usage: user/system ticks per host CPU id, given in ticks for readability. */
function v1Usage(perCpuTicks: [user: number, system: number][]): CpuUsage {
  const perCpu = perCpuTicks.map(([u, s]) => ({ userNs: BigInt(u) * NS_PER_TICK, systemNs: BigInt(s) * NS_PER_TICK }));
  return {
    userNs: perCpu.reduce((a, c) => a + c.userNs, 0n),
    systemNs: perCpu.reduce((a, c) => a + c.systemNs, 0n),
    perCpu,
  };
}

function v2Usage(userTicks: bigint, systemTicks: bigint): CpuUsage {
  return { userNs: userTicks * NS_PER_TICK, systemNs: systemTicks * NS_PER_TICK, perCpu: null };
}

/** The host advanced by `add` ticks per field on every CPU (aggregate recomputed). */
function advanceHost(host: HostStat, add: (id: number) => Partial<Record<keyof StatCpuTicks, bigint>>): HostStat {
  const perCpu = new Map<number, StatCpuTicks>();
  for (const [id, t] of host.perCpu) {
    const d = add(id);
    const next = { ...t };
    for (const f of STAT_CPU_FIELDS) next[f] += d[f] ?? 0n;
    perCpu.set(id, next);
  }
  const total = { ...t0() };
  for (const t of perCpu.values()) for (const f of STAT_CPU_FIELDS) total[f] += t[f];
  return { ...host, perCpu, total };
}

function t0(): StatCpuTicks {
  return { user: 0n, nice: 0n, system: 0n, idle: 0n, iowait: 0n, irq: 0n, softirq: 0n, steal: 0n, guest: 0n, guestNice: 0n };
}

const elapsed = (t: StatCpuTicks) => t.user + t.nice + t.system + t.idle + t.iowait + t.irq + t.softirq + t.steal;

/** Every cpu line of the previous text vs the next: no column may fall, and the same rows exist. */
function expectNoColumnFalls(before: string, after: string): void {
  const a = parseStat(before);
  const b = parseStat(after);
  for (const f of STAT_CPU_FIELDS) expect(b.total[f], `aggregate ${f}`).toBeGreaterThanOrEqual(a.total[f]);
  for (const [row, t] of a.perCpu) {
    const next = b.perCpu.get(row);
    if (next === undefined) continue;
    for (const f of STAT_CPU_FIELDS) expect(next[f], `cpu${row} ${f}`).toBeGreaterThanOrEqual(t[f]);
  }
}

describe('renderStat: format', () => {
  it('prints the kernel\'s format, which the host parser reads back with the host\'s column count', () => {
    const { text } = renderStat(input({ visible: [1, 3], usage: v2Usage(500n, 100n) }));
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^cpu {2}\d+( \d+){9}$/);
    expect(lines[1]).toMatch(/^cpu0 \d+( \d+){9}$/);
    expect(lines[2]).toMatch(/^cpu1 \d+( \d+){9}$/);
    const parsed = parseStat(text);
    expect(parsed.cpuFieldCount).toBe(HOST_4.cpuFieldCount);
    expect([...parsed.perCpu.keys()]).toEqual([0, 1]);
    expect(text.endsWith('\n')).toBe(true);
  });

  it('prints as many columns as an old host does', () => {
    const host = parseStat(fixture('stat-2.6.18'));
    const { text } = renderStat(input({ host, visible: [0], usage: v2Usage(10n, 5n) }));
    expect(text.split('\n')[0]).toMatch(/^cpu {2}\d+( \d+){7}$/);
    expect(parseStat(text).cpuFieldCount).toBe(8);
  });

  it('serves this machine\'s file with 10 columns and every other line in the host\'s order', () => {
    const host = parseStat(fixture('stat'));
    const { text } = renderStat(input({ host, visible: [0, 1], usage: v2Usage(1000n, 400n) }));
    const parsed = parseStat(text);
    expect(parsed.cpuFieldCount).toBe(10);
    expect(parsed.otherLines.map(([k]) => k)).toEqual(host.otherLines.map(([k]) => k));
  });

  it('takes procs_running/procs_blocked from the cgroup and the other lines from the host', () => {
    const { text } = renderStat(input({ tasks: { ...TASKS, running: 0, blocked: 4 } }));
    const lines = new Map(parseStat(text).otherLines);
    // The reader itself is running: never 0.
    expect(lines.get('procs_running')).toBe('1');
    expect(lines.get('procs_blocked')).toBe('4');
    for (const key of ['intr', 'ctxt', 'btime', 'processes', 'softirq']) {
      expect(lines.get(key)).toBe(new Map(HOST_4.otherLines).get(key));
    }
  });

  it('serves the host\'s procs lines without task counts', () => {
    const lines = new Map(parseStat(renderStat(input({ tasks: null })).text).otherLines);
    expect(lines.get('procs_running')).toBe('3');
    expect(lines.get('procs_blocked')).toBe('1');
  });
});

describe('renderStat: the container\'s CPU time', () => {
  it('maps v1 per-CPU time to the renumbered rows: cpu0 is host cpu2, cpu1 host cpu3', () => {
    const usage = v1Usage([[0, 0], [0, 0], [3000, 700], [1200, 300]]);
    const { text } = renderStat(input({ visible: [2, 3], usage }));
    const rows = parseStat(text).perCpu;
    expect(rows.get(0)).toMatchObject({ user: 3000n, system: 700n, steal: 355n, nice: 0n, iowait: 0n, irq: 0n, softirq: 0n });
    expect(rows.get(1)).toMatchObject({ user: 1200n, system: 300n, steal: 190n });
    // Each row's elapsed time is its host CPU's: idle is the rest.
    expect(elapsed(rows.get(0)!)).toBe(elapsed(HOST_4.perCpu.get(2)!));
    expect(elapsed(rows.get(1)!)).toBe(elapsed(HOST_4.perCpu.get(3)!));
    expect(parseStat(text).total).toMatchObject({ user: 4200n, system: 1000n });
  });

  it('distributes v2 totals over the shown CPUs by their host busy time, conserving the total', () => {
    const { text } = renderStat(input({ visible: [2, 3], usage: v2Usage(9001n, 2003n) }));
    const stat = parseStat(text);
    const [row0, row1] = [stat.perCpu.get(0)!, stat.perCpu.get(1)!];
    expect(row0.user + row1.user).toBe(9001n);
    expect(row0.system + row1.system).toBe(2003n);
    expect(stat.total).toMatchObject({ user: 9001n, system: 2003n });
    // host cpu2 was busy 71406 ticks, cpu3 30313: cpu0 gets ~70 %.
    const busy2 = 52004 + 150 + 18230 + 1022;
    const busy3 = 21007 + 9005 + 301;
    const expected0 = (11004 * busy2) / (busy2 + busy3);
    expect(Math.abs(Number(row0.user + row0.system) - expected0)).toBeLessThanOrEqual(1);
  });

  it('folds the time of cpuset CPUs cut by the quota into the shown ones, conserving the total', () => {
    // cpuset 0-3, quota 2 CPUs: rows show host cpu0 and cpu1; cpu2/cpu3 time must not vanish.
    const usage = v1Usage([[1000, 100], [2000, 200], [4000, 400], [8000, 800]]);
    const { text } = renderStat(input({ visible: [0, 1], usage }));
    const stat = parseStat(text);
    const [row0, row1] = [stat.perCpu.get(0)!, stat.perCpu.get(1)!];
    expect(row0.user + row1.user).toBe(15000n);
    expect(row0.system + row1.system).toBe(1500n);
    // Each row keeps at least its own host CPU's time.
    expect(row0.user).toBeGreaterThanOrEqual(1000n);
    expect(row1.user).toBeGreaterThanOrEqual(2000n);
  });

  it('folds per-interval time the same way on later reads', () => {
    const first = renderStat(input({ visible: [0, 1], usage: v1Usage([[0, 0], [0, 0], [0, 0], [0, 0]]) }));
    const host = advanceHost(HOST_4, () => ({ idle: 100n }));
    const next = renderStat(input({ host, visible: [0, 1], usage: v1Usage([[10, 0], [0, 0], [30, 10], [40, 0]]), previous: first.history }));
    const before = parseStat(first.text).total;
    const after = parseStat(next.text).total;
    expect(after.user - before.user).toBe(80n);
    expect(after.system - before.system).toBe(10n);
    // 200 ticks elapsed over two rows; the container used 90 of them: idle got the other 110.
    expect(after.idle - before.idle).toBe(110n);
  });

  it('serves the host\'s columns of the shown CPUs, renumbered, when the cgroup time is unknown', () => {
    const { text } = renderStat(input({ visible: [1, 3], usage: null }));
    const stat = parseStat(text);
    expect(stat.perCpu.get(0)).toEqual(HOST_4.perCpu.get(1));
    expect(stat.perCpu.get(1)).toEqual(HOST_4.perCpu.get(3));
  });

  it('keeps each row\'s total in step with its host CPU\'s elapsed time over reads', () => {
    let history: StatHistory | null = null;
    let host = HOST_4;
    for (let i = 1; i <= 5; i++) {
      host = advanceHost(host, (id) => ({ user: 20n, idle: 80n + BigInt(id), steal: 1n }));
      const out = renderStat(input({ host, visible: [1, 2], usage: v2Usage(BigInt(i * 30), BigInt(i * 5)), previous: history }));
      history = out.history;
      const rows = parseStat(out.text).perCpu;
      expect(elapsed(rows.get(0)!)).toBe(elapsed(host.perCpu.get(1)!));
      expect(elapsed(rows.get(1)!)).toBe(elapsed(host.perCpu.get(2)!));
    }
  });
});

describe('renderStat: never backwards', () => {
  it('holds idle while the cgroup\'s time runs past the host\'s ticks, then resumes without drift', () => {
    let out = renderStat(input({ visible: [0], usage: v2Usage(1000n, 0n) }));
    const idle0 = parseStat(out.text).perCpu.get(0)!.idle;
    // 100 ticks pass, but the cgroup reports 250 ticks of use (ns-exact vs sampled ticks).
    let host = advanceHost(HOST_4, () => ({ idle: 100n }));
    let next = renderStat(input({ host, visible: [0], usage: v2Usage(1250n, 0n), previous: out.history }));
    expectNoColumnFalls(out.text, next.text);
    expect(parseStat(next.text).perCpu.get(0)!.idle).toBe(idle0);
    expect(parseStat(next.text).perCpu.get(0)!.user).toBe(1250n);
    out = next;
    // 1000 more ticks, the cgroup idle: idle resumes where the clock says, minus the overshoot.
    host = advanceHost(host, () => ({ idle: 1000n }));
    next = renderStat(input({ host, visible: [0], usage: v2Usage(1250n, 0n), previous: out.history }));
    expectNoColumnFalls(out.text, next.text);
    const row = parseStat(next.text).perCpu.get(0)!;
    expect(elapsed(row)).toBe(elapsed(host.perCpu.get(0)!));
    expect(row.idle).toBe(idle0 + 1100n - 250n);
  });

  it('ignores host idle/iowait counters that wobble downwards, and does not count the recovery twice', () => {
    const first = renderStat(input({ visible: [0, 1], usage: v1Usage([[100, 10], [100, 10], [0, 0], [0, 0]]) }));
    const dip = advanceHost(HOST_4, () => ({ idle: -7n, iowait: 3n }));
    const second = renderStat(input({ host: dip, visible: [0, 1], usage: v1Usage([[100, 10], [100, 10], [0, 0], [0, 0]]), previous: first.history }));
    expectNoColumnFalls(first.text, second.text);
    const back = advanceHost(HOST_4, () => ({ idle: 10n }));
    const third = renderStat(input({ host: back, visible: [0, 1], usage: v1Usage([[100, 10], [100, 10], [0, 0], [0, 0]]), previous: second.history }));
    expectNoColumnFalls(second.text, third.text);
    // The host's real progress since the first read is 10 ticks per CPU (its high-water).
    const gained = parseStat(third.text).perCpu.get(0)!.idle - parseStat(first.text).perCpu.get(0)!.idle;
    expect(gained).toBe(10n);
  });

  it('follows a wobbling host column by its high-water mark when serving the host\'s columns', () => {
    const first = renderStat(input({ visible: [0], usage: null }));
    // The kernel moves 3 ticks from iowait back to idle, then iowait ends 2 ticks above the start.
    const dip = advanceHost(HOST_4, () => ({ iowait: -3n, idle: 3n }));
    const second = renderStat(input({ host: dip, visible: [0], usage: null, previous: first.history }));
    expectNoColumnFalls(first.text, second.text);
    const back = advanceHost(HOST_4, () => ({ iowait: 2n, idle: 8n }));
    const third = renderStat(input({ host: back, visible: [0], usage: null, previous: second.history }));
    expectNoColumnFalls(second.text, third.text);
    const [a, c] = [parseStat(first.text).perCpu.get(0)!, parseStat(third.text).perCpu.get(0)!];
    expect(c.iowait - a.iowait).toBe(2n);
    expect(elapsed(c) - elapsed(a)).toBe(10n);
  });

  it('survives a cgroup counter reset (recreated cgroup) without any column falling', () => {
    const first = renderStat(input({ visible: [0, 1], usage: v2Usage(5000n, 500n) }));
    const host = advanceHost(HOST_4, () => ({ idle: 50n }));
    const second = renderStat(input({ host, visible: [0, 1], usage: v2Usage(20n, 2n), previous: first.history }));
    expectNoColumnFalls(first.text, second.text);
    const host3 = advanceHost(host, () => ({ idle: 50n }));
    const third = renderStat(input({ host: host3, visible: [0, 1], usage: v2Usage(60n, 2n), previous: second.history }));
    expectNoColumnFalls(second.text, third.text);
    expect(parseStat(third.text).total.user - parseStat(second.text).total.user).toBe(40n);
  });

  it('never lets any column of any line fall over 50 reads with random noise, cpuset and quota changes', () => {
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const int = (n: number) => BigInt(Math.floor(random() * n));
    let host = HOST_4;
    const cgroupNs = [0n, 0n, 0n, 0n].map(() => ({ userNs: 0n, systemNs: 0n }));
    let history: StatHistory | null = null;
    let previousText: string | null = null;
    let previousCount = 0;
    const shrunkRows: string[] = [];
    const visibleSets = [[0, 1, 2, 3], [0, 1], [2, 3], [1], [0, 2, 3]];
    for (let i = 0; i < 50; i++) {
      // Host: ~100 ticks per CPU, with idle sometimes reading a little lower than before.
      host = advanceHost(host, () => ({ user: int(40), system: int(20), idle: int(60) - 5n, iowait: int(3), steal: int(2) }));
      // Cgroup: sometimes more than the host's elapsed time (ns-exact vs ticks).
      for (const cpu of cgroupNs) {
        cpu.userNs += int(150) * NS_PER_TICK + int(Number(NS_PER_TICK));
        cpu.systemNs += int(30) * NS_PER_TICK;
      }
      const perCpuUsage = cgroupNs.map((c) => ({ ...c }));
      const usage: CpuUsage | null =
        i % 7 === 3
          ? null
          : i % 2 === 0
            ? { userNs: perCpuUsage.reduce((a, c) => a + c.userNs, 0n), systemNs: perCpuUsage.reduce((a, c) => a + c.systemNs, 0n), perCpu: perCpuUsage }
            : { userNs: perCpuUsage.reduce((a, c) => a + c.userNs, 0n), systemNs: perCpuUsage.reduce((a, c) => a + c.systemNs, 0n), perCpu: null };
      const visible = visibleSets[Math.floor(i / 10)]!;
      const out = renderStat(input({ host, visible, usage, previous: history }));
      const parsed = parseStat(out.text);
      expect(parsed.perCpu.size).toBe(visible.length);
      if (previousText !== null) {
        expectNoColumnFalls(previousText, out.text);
        if (visible.length === previousCount) {
          // Same rows: every row's total grew, never shrank.
          const before = parseStat(previousText);
          for (const [row, t] of parsed.perCpu) {
            const was = elapsed(before.perCpu.get(row)!);
            if (elapsed(t) < was) shrunkRows.push(`read ${i} ${row}: ${was} -> ${elapsed(t)}`);
          }
        }
      }
      history = out.history;
      previousText = out.text;
      previousCount = visible.length;
    }
    expect(shrunkRows).toEqual([]);
  });

  it('keeps a row that stops being shown in the aggregate, and starts a newly shown row at 0', () => {
    const usage = v2Usage(1000n, 100n);
    const four = renderStat(input({ visible: [0, 1, 2, 3], usage }));
    const host = advanceHost(HOST_4, () => ({ idle: 100n }));
    const two = renderStat(input({ host, visible: [0, 1], usage: v2Usage(1100n, 100n), previous: four.history }));
    expectNoColumnFalls(four.text, two.text);
    expect(parseStat(two.text).perCpu.size).toBe(2);
    const host2 = advanceHost(host, () => ({ idle: 100n }));
    const three = renderStat(input({ host: host2, visible: [0, 1, 2], usage: v2Usage(1100n, 100n), previous: two.history }));
    expectNoColumnFalls(two.text, three.text);
    // Row 2 was shown before: it resumes from its frozen values, it does not restart.
    expect(parseStat(three.text).perCpu.get(2)!.idle).toBeGreaterThanOrEqual(parseStat(four.text).perCpu.get(2)!.idle);
    const host3 = advanceHost(host2, () => ({ idle: 100n }));
    const five = renderStat(input({ host: host3, visible: [0, 1, 2, 3], usage: v2Usage(1100n, 100n), previous: three.history }));
    expect(parseStat(five.text).perCpu.get(3)!.idle).toBeGreaterThanOrEqual(parseStat(four.text).perCpu.get(3)!.idle);
  });

  it('starts a row never shown before at 0, like a CPU just brought online', () => {
    const one = renderStat(input({ visible: [0], usage: v2Usage(10n, 1n) }));
    const host = advanceHost(HOST_4, () => ({ idle: 100n }));
    const two = renderStat(input({ host, visible: [0, 1], usage: v2Usage(10n, 1n), previous: one.history }));
    expectNoColumnFalls(one.text, two.text);
    const row1 = parseStat(two.text).perCpu.get(1)!;
    expect(elapsed(row1)).toBe(100n);
    expect(row1.steal).toBe(0n);
  });

  it('does not mutate the previous history it is given', () => {
    const first = renderStat(input({ visible: [0, 1], usage: v2Usage(10n, 1n) }));
    const snapshot = JSON.stringify(first.history, (_k, v) => (typeof v === 'bigint' ? `${v}` : v instanceof Map ? [...v] : v));
    renderStat(input({ host: advanceHost(HOST_4, () => ({ idle: 10n })), visible: [1], usage: v2Usage(99n, 9n), previous: first.history }));
    expect(JSON.stringify(first.history, (_k, v) => (typeof v === 'bigint' ? `${v}` : v instanceof Map ? [...v] : v))).toBe(snapshot);
  });

  it('refuses zero visible CPUs', () => {
    expect(() => renderStat(input({ visible: [] }))).toThrow(/0 CPUs/);
  });
});

describe('fillByWeight', () => {
  it('caps rows at their capacity and pours the rest into rows with room', () => {
    expect(fillByWeight(100n, [9n, 1n], [50n, 100n])).toEqual([50n, 50n]);
    expect(fillByWeight(30n, [1n, 1n, 1n], [5n, 100n, 100n])).toEqual([5n, 13n, 12n]);
  });

  it('still gives out what exceeds every row\'s capacity (the cgroup\'s time is conserved)', () => {
    const shares = fillByWeight(300n, [1n, 1n], [100n, 100n]);
    expect(shares[0]! + shares[1]!).toBe(300n);
  });
});
