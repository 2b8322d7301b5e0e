import { describe, expect, it } from 'vitest';
import {
  containerMemFreeBytes,
  containerMemTotalBytes,
  containerSwapFreeBytes,
  containerSwapTotalBytes,
  containerSwapUsedBytes,
} from '../../src/views/memoryMath';
import { memorySnapshot as memory } from './memoryFixtures';

const MIB = 1024n * 1024n;
const HOST_KB = 8n * 1024n * 1024n; // 8 GiB in kB


describe('memoryMath', () => {
  it('MemTotal is the limit, capped at the host RAM; no limit = host RAM', () => {
    expect(containerMemTotalBytes(HOST_KB, memory({ limitBytes: 512n * MIB }))).toBe(512n * MIB);
    expect(containerMemTotalBytes(HOST_KB, memory({ limitBytes: 64n * 1024n * MIB }))).toBe(HOST_KB * 1024n);
    expect(containerMemTotalBytes(HOST_KB, memory({ limitBytes: null }))).toBe(HOST_KB * 1024n);
  });

  it('MemFree is MemTotal - usage, 0 when usage is above the limit', () => {
    expect(containerMemFreeBytes(HOST_KB, memory({ limitBytes: 512n * MIB, usageBytes: 100n * MIB }))).toBe(412n * MIB);
    expect(containerMemFreeBytes(HOST_KB, memory({ limitBytes: 512n * MIB, usageBytes: 600n * MIB }))).toBe(0n);
  });

  it("MemFree is at most the headroom an ancestor's limit leaves (siblings' usage fills it)", () => {
    // c3: 500 MiB limit, 300 MiB charged; the reader's cgroup uses 100 MiB of it.
    const c3 = memory({ limitBytes: 500n * MIB, usageBytes: 100n * MIB, headroomBytes: 200n * MIB });
    expect(containerMemFreeBytes(HOST_KB, c3)).toBe(200n * MIB);
    // The own limit minus usage still wins when it is tighter; null headroom = no ancestor bound.
    expect(containerMemFreeBytes(HOST_KB, memory({ limitBytes: 150n * MIB, usageBytes: 100n * MIB, headroomBytes: 200n * MIB }))).toBe(50n * MIB);
    expect(containerMemFreeBytes(HOST_KB, memory({ limitBytes: 500n * MIB, usageBytes: 100n * MIB, headroomBytes: null }))).toBe(400n * MIB);
    expect(containerMemFreeBytes(HOST_KB, memory({ limitBytes: 500n * MIB, usageBytes: 100n * MIB, headroomBytes: 0n }))).toBe(0n);
  });

  it("SwapUsed includes what siblings took from an ancestor's swap limit, so SwapFree <= that headroom", () => {
    const m = memory({ swapLimitBytes: 100n * MIB, swapUsageBytes: 10n * MIB, swapHeadroomBytes: 30n * MIB });
    expect(containerSwapUsedBytes(HOST_KB, m)).toBe(70n * MIB);
    expect(containerSwapFreeBytes(HOST_KB, m)).toBe(30n * MIB);
    const roomy = memory({ swapLimitBytes: 100n * MIB, swapUsageBytes: 10n * MIB, swapHeadroomBytes: 500n * MIB });
    expect(containerSwapFreeBytes(HOST_KB, roomy)).toBe(90n * MIB);
  });

  it('SwapTotal is the swap limit, capped at the host swap; no limit = host swap', () => {
    expect(containerSwapTotalBytes(HOST_KB, memory({ swapLimitBytes: 256n * MIB }))).toBe(256n * MIB);
    expect(containerSwapTotalBytes(1024n, memory({ swapLimitBytes: 256n * MIB }))).toBe(1024n * 1024n);
    expect(containerSwapTotalBytes(HOST_KB, memory({ swapLimitBytes: null }))).toBe(HOST_KB * 1024n);
    expect(containerSwapTotalBytes(HOST_KB, memory({ swapLimitBytes: 0n }))).toBe(0n);
    expect(containerSwapTotalBytes(0n, memory({ swapLimitBytes: null }))).toBe(0n);
  });

  it('shows no swap when the kernel does not account it for the cgroup', () => {
    const unaccounted = memory({ swapAccounted: false, swapLimitBytes: null, swapUsageBytes: 0n });
    expect(containerSwapTotalBytes(HOST_KB, unaccounted)).toBe(0n);
    expect(containerSwapUsedBytes(HOST_KB, unaccounted)).toBe(0n);
    expect(containerSwapFreeBytes(HOST_KB, unaccounted)).toBe(0n);
  });

  it('SwapUsed is capped at SwapTotal so SwapFree never goes negative', () => {
    const over = memory({ swapLimitBytes: 100n * MIB, swapUsageBytes: 150n * MIB });
    expect(containerSwapUsedBytes(HOST_KB, over)).toBe(100n * MIB);
    expect(containerSwapFreeBytes(HOST_KB, over)).toBe(0n);
    const normal = memory({ swapLimitBytes: 100n * MIB, swapUsageBytes: 30n * MIB });
    expect(containerSwapUsedBytes(HOST_KB, normal)).toBe(30n * MIB);
    expect(containerSwapFreeBytes(HOST_KB, normal)).toBe(70n * MIB);
  });
});
