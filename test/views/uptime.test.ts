import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseUptime } from '../../src/host/uptime';
import { renderUptime, type UptimeInput } from '../../src/views/uptime';

/** This machine's /proc/uptime: 2620.97 s up, 5167.65 s idle over its 2 CPUs. */
const host = parseUptime(readFileSync(path.join(__dirname, '../fixtures/proc/uptime'), 'utf8'));

function input(overrides: Partial<UptimeInput>): UptimeInput {
  return {
    hostUptimeSec: host.uptimeSec,
    hostIdleSec: host.idleSec,
    containerStartTicks: 100_000n, // started 1000.00 s after boot
    userHz: 100,
    cpuUsageNs: 300_000_000_000n, // 300 s of CPU
    visibleCpuCount: 2,
    hostCpuCount: 2,
    ...overrides,
  };
}

describe('renderUptime', () => {
  it('counts uptime from the oldest process start and idle over the container CPUs', () => {
    // uptime 2620.97 - 1000 = 1620.97; idle 1620.97 x 2 CPUs - 300 s = 2941.94
    expect(renderUptime(input({}))).toBe('1620.97 2941.94\n');
  });

  it('scales idle to the CPUs the container sees', () => {
    expect(renderUptime(input({ visibleCpuCount: 1 }))).toBe('1620.97 1320.97\n');
  });

  it('serves the host values when the start time is unknown', () => {
    expect(renderUptime(input({ containerStartTicks: null }))).toBe('2620.97 5167.65\n');
  });

  it('clamps idle at 0 when the cgroup used more CPU than its uptime allows', () => {
    expect(renderUptime(input({ cpuUsageNs: 10_000_000_000_000n }))).toBe('1620.97 0.00\n');
  });

  it('applies the host idle fraction when the CPU usage is unknown', () => {
    // 162097 cs x 1 CPU x 516765 / (262097 cs x 2 CPUs) = 159799.7 -> 1597.99
    expect(renderUptime(input({ cpuUsageNs: null, visibleCpuCount: 1 }))).toBe('1620.97 1597.99\n');
  });

  it('never shows more idle than the container CPUs had, nor a negative uptime', () => {
    const text = renderUptime(input({ containerStartTicks: 999_999_999n }));
    expect(text).toBe('0.00 0.00\n');
    const idleFractionAboveOne = renderUptime(
      input({ cpuUsageNs: null, hostIdleSec: 99_999.99, visibleCpuCount: 1 }),
    );
    expect(idleFractionAboveOne).toBe('1620.97 1620.97\n');
  });

  it('truncates to hundredths like the kernel and pads them to two digits', () => {
    // USER_HZ 1000: start 2615.9219 s -> 261592 cs; 262097 - 261592 = 505 cs = 5.05 s.
    const text = renderUptime(input({ containerStartTicks: 2_615_921n, userHz: 1000, cpuUsageNs: 10_009_999_999n }));
    // idle: 505 x 2 - 1000 (10.009999999 s truncated to 1000 cs) = 10 cs
    expect(text).toBe('5.05 0.10\n');
  });

  it('prints a line the /proc/uptime parser reads back', () => {
    const back = parseUptime(renderUptime(input({})));
    expect(back).toEqual({ uptimeSec: 1620.97, idleSec: 2941.94 });
  });
});
