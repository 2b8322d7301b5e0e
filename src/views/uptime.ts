// /proc/uptime for a container: uptime since its oldest live process started, idle what its
// visible CPUs did not use (docs/views.md#uptime). Whole hundredths, truncated like the kernel.
import { atLeastZero, minBig } from '../cgroup/bigints';

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
    // No start time (no process found): the host's values.
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
    // No usage figure: the host's idle fraction applied to the container's CPU time.
    const hostAvailableCs = hostUptimeCs * BigInt(Math.max(0, input.hostCpuCount));
    idleCs = hostAvailableCs > 0n ? (availableCs * hostIdleCs) / hostAvailableCs : 0n;
  }
  // Never below 0, never more than the container's CPUs could have idled.
  // The cgroup's usage may predate its oldest live process: never below 0.
  idleCs = atLeastZero(minBig(idleCs, availableCs));
  return `${formatCentiseconds(uptimeCs)} ${formatCentiseconds(idleCs)}\n`;
}

function formatCentiseconds(cs: bigint): string {
  const hundredths = cs % 100n;
  return `${cs / 100n}.${hundredths < 10n ? '0' : ''}${hundredths}`;
}
