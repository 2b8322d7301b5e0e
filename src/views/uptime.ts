/**
 * /proc/uptime for a container: "uptime idle\n" in seconds with two decimals.
 *
 * - uptime: host uptime - the container's start, where the start is its oldest process's start
 *   time (/proc/<pid>/stat field 22, clock ticks since boot). The container has "booted" when
 *   its first process still alive started.
 * - idle: the kernel sums idle over every CPU, so a 2-CPU host shows idle up to 2 x uptime. The
 *   container's CPUs (visibleCpuCount, what its cpuinfo/online show) were available for
 *   uptime x visibleCpuCount seconds, and it used cpuUsage of them: idle = that difference,
 *   never below 0 (the cgroup's usage counts from its creation, which may predate its oldest
 *   live process). Without a usage figure, the host's idle fraction is applied to the
 *   container's CPU time instead: idle = uptime x visible x hostIdle / (hostUptime x hostCpus).
 *   Idle can step backwards when the container's CPU count changes.
 * - No start time (containerStartTicks null, e.g. no process found): the host's values.
 *
 * Printed like the kernel: "%lu.%02lu", hundredths TRUNCATED, not rounded, so the container's
 * uptime never shows more than the host's. Computed in whole hundredths (bigint), so no
 * floating-point error reaches the last digit.
 */

export interface UptimeInput {
  hostUptimeSec: number;
  /** Host idle seconds summed over all CPUs (the second field of the host's /proc/uptime). */
  hostIdleSec: number;
  /** The container's oldest process's start time in clock ticks since boot; null = unknown. */
  containerStartTicks: bigint | null;
  /** USER_HZ: clock ticks per second (100 on Linux). */
  userHz: number;
  /** CPU time the container's cgroup has used (user + system); null = unknown. */
  cpuUsageNs: bigint | null;
  /** CPUs the container sees. */
  visibleCpuCount: number;
  /** CPUs the host's idle figure is summed over. */
  hostCpuCount: number;
}

const NS_PER_CENTISECOND = 10_000_000n;

export function renderUptime(input: UptimeInput): string {
  // The host prints exactly two decimals: round() recovers its hundredths exactly.
  const hostUptimeCs = BigInt(Math.round(input.hostUptimeSec * 100));
  const hostIdleCs = BigInt(Math.round(input.hostIdleSec * 100));
  if (input.containerStartTicks === null) {
    return `${formatCentiseconds(hostUptimeCs)} ${formatCentiseconds(hostIdleCs)}\n`;
  }

  const startCs = (input.containerStartTicks * 100n) / BigInt(input.userHz);
  const uptimeCs = atLeastZero(hostUptimeCs - startCs);
  const cpus = BigInt(Math.max(0, input.visibleCpuCount));
  const availableCs = uptimeCs * cpus;

  let idleCs: bigint;
  if (input.cpuUsageNs !== null) {
    idleCs = availableCs - input.cpuUsageNs / NS_PER_CENTISECOND;
  } else {
    const hostAvailableCs = hostUptimeCs * BigInt(Math.max(0, input.hostCpuCount));
    idleCs = hostAvailableCs > 0n ? (availableCs * hostIdleCs) / hostAvailableCs : 0n;
  }
  // Never below 0, never more than the container's CPUs could have idled.
  idleCs = atLeastZero(idleCs < availableCs ? idleCs : availableCs);
  return `${formatCentiseconds(uptimeCs)} ${formatCentiseconds(idleCs)}\n`;
}

function atLeastZero(a: bigint): bigint {
  return a > 0n ? a : 0n;
}

function formatCentiseconds(cs: bigint): string {
  const hundredths = cs % 100n;
  return `${cs / 100n}.${hundredths < 10n ? '0' : ''}${hundredths}`;
}
