/**
 * /proc/swaps for a container, consistent with its /proc/meminfo swap lines.
 *
 * - The header line always (the kernel prints it even with no swap at all).
 * - No swap for the container (SwapTotal 0: swap limit 0, host without swap, or swap not
 *   accounted for the cgroup — see memoryMath.ts) or no host device: the header only, as on a
 *   host without swap.
 * - Otherwise one line per host device, Size and Used scaled so that the columns add up to the
 *   container's SwapTotal and SwapUsed in kB — what `swapon --show` and anything summing this
 *   file then agree with `free`. The cgroup does not account swap per device, so the
 *   container's share is spread over the devices in proportion to their sizes: every device
 *   shows the same fill ratio as the container as a whole. Path, type and priority stay the
 *   host's (the container swaps onto those very devices, in that priority order).
 *
 * Rounding: each column is split with cumulative floors (column_i = floor(T * C_i / S) -
 * floor(T * C_{i-1} / S), C_i the running sum of the weights), so the column sums to T exactly.
 * Used is split by the container's scaled sizes with the same rule; since Used <= Size in
 * total, that gives Used <= Size on every line too.
 *
 * Lines are printed in the kernel's format (mm/swapfile.c swap_show): the path padded with
 * spaces to column 40 (at least one), the type ("file" gets a tab to line up with
 * "partition"), then size, used, priority separated by a tab, plus a second tab after a number
 * below 10000000.
 */
import type { MemorySnapshot } from '../cgroup/snapshot';
import { parseSwaps } from '../host/swaps';
import type { SwapDevice } from '../host/snapshot';
import { containerSwapTotalBytes, containerSwapUsedBytes } from './memoryMath';

export function renderSwaps(
  hostSwapsText: string,
  memory: MemorySnapshot,
  hostMeminfoSwapTotalKb: bigint,
): string {
  const host = parseSwaps(hostSwapsText);
  const totalKb = containerSwapTotalBytes(hostMeminfoSwapTotalKb, memory) / 1024n;
  const usedKb = containerSwapUsedBytes(hostMeminfoSwapTotalKb, memory) / 1024n;
  const hostSizeKb = host.devices.reduce((sum, d) => sum + d.sizeKb, 0n);

  let out = `${host.header}\n`;
  if (totalKb === 0n || hostSizeKb === 0n) return out;

  const sizesKb = splitProportionally(
    totalKb,
    host.devices.map((d) => d.sizeKb),
  );
  const usedPerDeviceKb = splitProportionally(usedKb, sizesKb);
  host.devices.forEach((device, i) => {
    out += formatSwapLine(device, sizesKb[i]!, usedPerDeviceKb[i]!);
  });
  return out;
}

/** Split `amount` over `weights` (sum > 0) with cumulative floors: parts sum to `amount`. */
function splitProportionally(amount: bigint, weights: bigint[]): bigint[] {
  const weightSum = weights.reduce((sum, w) => sum + w, 0n);
  if (weightSum === 0n) return weights.map(() => 0n);
  const parts: bigint[] = [];
  let cumulativeWeight = 0n;
  let given = 0n;
  for (const weight of weights) {
    cumulativeWeight += weight;
    const upToHere = (amount * cumulativeWeight) / weightSum;
    parts.push(upToHere - given);
    given = upToHere;
  }
  return parts;
}

function formatSwapLine(device: SwapDevice, sizeKb: bigint, usedKb: bigint): string {
  const padding = ' '.repeat(Math.max(1, 40 - device.filename.length));
  // The kernel prints "file\t" so that it spans the same tab stop as "partition".
  const type = device.type.length < 8 ? `${device.type}\t` : device.type;
  const afterSize = sizeKb < 10_000_000n ? '\t' : '';
  const afterUsed = usedKb < 10_000_000n ? '\t' : '';
  return (
    `${device.filename}${padding}${type}` +
    `\t${sizeKb}\t${afterSize}${usedKb}\t${afterUsed}${device.priority}\n`
  );
}
