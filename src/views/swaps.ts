// /proc/swaps for a container: the host's devices with Size and Used scaled to add up to the
// container's SwapTotal and SwapUsed (docs/views.md#swaps), so swapon agrees with free.
import type { MemorySnapshot } from '../cgroup/snapshot';
import { parseSwaps } from '../host/swaps';
import type { SwapDevice } from '../host/snapshot';
import { splitByWeight } from '../cgroup/bigints';
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

  let out = `${host.header}\n`; // the kernel prints it even without swap
  if (totalKb === 0n || hostSizeKb === 0n) return out;

  // The cgroup does not account swap per device: every device shows the container's fill ratio.
  const sizesKb = splitByWeight(totalKb, host.devices.map((d) => d.sizeKb));
  // Used <= total, so each device's used share is at most its size.
  const usedPerDeviceKb = splitByWeight(usedKb, sizesKb);
  host.devices.forEach((device, i) => {
    out += formatSwapLine(device, sizesKb[i], usedPerDeviceKb[i]);
  });
  return out;
}

/** The kernel's swap_show layout: path padded to column 40, a second tab after numbers below
 *  10000000. */
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
