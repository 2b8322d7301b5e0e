/**
 * /proc/pressure/{cpu,memory,io} of a container: its cgroup's PSI, in the kernel's format
 * (kernel/sched/psi.c, psi_show: "%s avg10=%lu.%02lu avg60=%lu.%02lu avg300=%lu.%02lu total=%llu").
 */
import type { PressureLine, PressureSnapshot } from '../cgroup/snapshot';

function percent(centi: number): string {
  return `${Math.floor(centi / 100)}.${String(centi % 100).padStart(2, '0')}`;
}

function line(kind: 'some' | 'full', p: PressureLine): string {
  return `${kind} avg10=${percent(p.avg10Centi)} avg60=${percent(p.avg60Centi)} avg300=${percent(p.avg300Centi)} total=${p.totalUs}\n`;
}

export function renderPressure(pressure: PressureSnapshot): string {
  return line('some', pressure.some) + (pressure.full ? line('full', pressure.full) : '');
}
