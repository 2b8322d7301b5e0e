import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MemorySnapshot } from '../../src/cgroup/snapshot';
import { parseSwaps } from '../../src/host/swaps';
import { renderSwaps } from '../../src/views/swaps';
import { memorySnapshot } from './memoryFixtures';

const FIXTURE_DIR = path.join(__dirname, '../fixtures/proc');
const NO_SWAP = readFileSync(path.join(FIXTURE_DIR, 'swaps'), 'utf8');
/** Two devices, 8388604 + 16777212 kB, in the kernel's swap_show format. */
const TWO_DEVICES = readFileSync(path.join(FIXTURE_DIR, 'swaps-devices'), 'utf8');
const HOST_SWAP_TOTAL_KB = 8388604n + 16777212n;
const HEADER = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n';
const MIB = 1024n * 1024n;


/** 100 MiB used of 512 MiB, 300 MiB swapped of a 1 GiB swap limit. */
function memory(overrides: Partial<MemorySnapshot>): MemorySnapshot {
  return memorySnapshot({
    limitBytes: 512n * MIB, usageBytes: 100n * MIB, swapLimitBytes: 1024n * MIB, swapUsageBytes: 300n * MIB,
    ...overrides,
  });
}

const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);

describe('renderSwaps', () => {
  it('prints only the header when the host has no swap', () => {
    expect(renderSwaps(NO_SWAP, memory({}), 0n)).toBe(HEADER);
  });

  it('prints only the header when the container may not swap (limit 0)', () => {
    expect(renderSwaps(TWO_DEVICES, memory({ swapLimitBytes: 0n, swapUsageBytes: 0n }), HOST_SWAP_TOTAL_KB)).toBe(HEADER);
  });

  it('prints only the header when swap is not accounted for the cgroup', () => {
    const unaccounted = memory({ swapAccounted: false, swapLimitBytes: null, swapUsageBytes: 0n });
    expect(renderSwaps(TWO_DEVICES, unaccounted, HOST_SWAP_TOTAL_KB)).toBe(HEADER);
  });

  it('scales Size and Used so they add up to the container SwapTotal and SwapUsed in kB', () => {
    const text = renderSwaps(TWO_DEVICES, memory({}), HOST_SWAP_TOTAL_KB);
    const parsed = parseSwaps(text);
    expect(parsed.devices).toHaveLength(2);
    expect(sum(parsed.devices.map((d) => d.sizeKb))).toBe(1024n * 1024n);
    expect(sum(parsed.devices.map((d) => d.usedKb))).toBe(300n * 1024n);
    // In proportion to the device sizes (1:2), same fill ratio everywhere, Used <= Size.
    expect(parsed.devices.map((d) => d.sizeKb)).toEqual([349525n, 699051n]);
    expect(parsed.devices.map((d) => d.usedKb)).toEqual([102400n, 204800n]); // exact 102399.90, 204800.10
    for (const d of parsed.devices) expect(d.usedKb).toBeLessThanOrEqual(d.sizeKb);
    // Path, type and priority are the host's.
    expect(parsed.devices.map((d) => [d.filename, d.type, d.priority])).toEqual([
      ['/dev/sda2', 'partition', -2],
      ['/var/lib/swap/a\\040file', 'file', -3],
    ]);
  });

  it('prints lines byte for byte in the kernel swap_show format', () => {
    const text = renderSwaps(TWO_DEVICES, memory({}), HOST_SWAP_TOTAL_KB);
    expect(text).toBe(
      HEADER +
        '/dev/sda2                               partition\t349525\t\t102400\t\t-2\n' +
        '/var/lib/swap/a\\040file                 file\t\t699051\t\t204800\t\t-3\n',
    );
  });

  it('reproduces the host file exactly when the container has all of the host swap', () => {
    // No limit and nothing used: sizes are the host's; with used 0 the lines equal the kernel's.
    const all = memory({ swapLimitBytes: null, swapUsageBytes: 0n });
    const hostWithNothingUsed = TWO_DEVICES.replace('\t1048576\t\t-2', '\t0\t\t-2');
    expect(renderSwaps(TWO_DEVICES, all, HOST_SWAP_TOTAL_KB)).toBe(hostWithNothingUsed);
  });

  it('drops the second tab after numbers of 8 digits, as the kernel does', () => {
    const big = memory({ swapLimitBytes: null, swapUsageBytes: 20n * 1024n * MIB });
    const lines = renderSwaps(TWO_DEVICES, big, HOST_SWAP_TOTAL_KB).split('\n');
    // Device 2: 16777212 kB (8 digits, one tab); its share of 20 GiB, 13981014.44 kB, rounds to 13981014.
    expect(lines[2]).toBe('/var/lib/swap/a\\040file                 file\t\t16777212\t13981014\t-3');
  });

  it('caps Used at Size when the usage is above a lowered limit', () => {
    const over = memory({ swapLimitBytes: 100n * MIB, swapUsageBytes: 400n * MIB });
    const parsed = parseSwaps(renderSwaps(TWO_DEVICES, over, HOST_SWAP_TOTAL_KB));
    for (const d of parsed.devices) expect(d.usedKb).toBe(d.sizeKb);
  });

  it('never shows a Used above Size on any line, whatever the split', () => {
    for (let limitMib = 1n; limitMib < 200n; limitMib += 7n) {
      for (let usedMib = 0n; usedMib <= limitMib; usedMib += 3n) {
        const m = memory({ swapLimitBytes: limitMib * MIB + 1234n, swapUsageBytes: usedMib * MIB + 77n });
        const parsed = parseSwaps(renderSwaps(TWO_DEVICES, m, HOST_SWAP_TOTAL_KB));
        for (const d of parsed.devices) expect(d.usedKb).toBeLessThanOrEqual(d.sizeKb);
      }
    }
  });
});
