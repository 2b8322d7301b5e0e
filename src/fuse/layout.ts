/**
 * The tree isolfs serves. LXCFS-compatible paths, so an LXCFS pod manifest works by changing
 * the prefix (/var/lib/lxcfs -> the isolfs mountpoint).
 */

/** Virtual files whose content is computed per caller. */
export const VIEW_PATHS = [
  '/proc/cpuinfo',
  '/proc/meminfo',
  '/proc/stat',
  '/proc/vmstat',
  '/proc/loadavg',
  '/proc/uptime',
  '/proc/swaps',
  '/proc/diskstats',
  '/proc/partitions',
  '/sys/devices/system/cpu/online',
] as const;
export type ViewPath = (typeof VIEW_PATHS)[number];

/** Control files: the sysctls of the kernel feature isolfs stands in for. */
export const CONTROL_PATHS = [
  '/proc/sys/kernel/stats_isolated',
  '/proc/sys/kernel/container_stats_isolated',
] as const;
export type ControlPath = (typeof CONTROL_PATHS)[number];

/**
 * Pressure (PSI) files: per-caller content like the views, but each open file may carry a PSI
 * trigger (a write) that poll(2) waits on, so their per-container copies need per-open state
 * and live in the main tree, never in the page-cache tree.
 */
export const PRESSURE_PATHS = ['/proc/pressure/cpu', '/proc/pressure/memory', '/proc/pressure/io'] as const;
export type PressurePath = (typeof PRESSURE_PATHS)[number];

/**
 * The CPU directory: besides `online` (a view above), its files come from the host's directory
 * as scanned at start-up (src/host/cpuTree.ts): per-CPU ones under cpuN/, the rest beside them.
 */
export const CPU_TREE_DIR = '/sys/devices/system/cpu';
export type CpuTreePath = `${typeof CPU_TREE_DIR}/${string}`;

export type ServedPath = ViewPath | ControlPath | PressurePath | CpuTreePath;

export function isViewPath(p: string): p is ViewPath {
  return (VIEW_PATHS as readonly string[]).includes(p);
}

export function isControlPath(p: string): p is ControlPath {
  return (CONTROL_PATHS as readonly string[]).includes(p);
}

export function isPressurePath(p: string): p is PressurePath {
  return (PRESSURE_PATHS as readonly string[]).includes(p);
}
