import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { atLeastZero, maxBig, minBig, splitByWeight, tighter } from '../../src/cgroup/bigints';

const ABOVE_2_53 = 2n ** 53n + 1n; // 9007199254740993: Number cannot hold it
const V1_UNLIMITED = 9223372036854771712n;
const U64_MAX = 2n ** 64n - 1n;

describe('bigint helpers', () => {
  it('min, max and atLeastZero are exact above 2^53', () => {
    expect(minBig(ABOVE_2_53, ABOVE_2_53 + 1n)).toBe(ABOVE_2_53);
    expect(maxBig(ABOVE_2_53, ABOVE_2_53 - 1n)).toBe(ABOVE_2_53);
    expect(minBig(V1_UNLIMITED, U64_MAX)).toBe(V1_UNLIMITED);
    expect(maxBig(-U64_MAX, U64_MAX)).toBe(U64_MAX);
    expect(atLeastZero(U64_MAX)).toBe(U64_MAX);
    expect(atLeastZero(-ABOVE_2_53)).toBe(0n);
    expect(atLeastZero(0n)).toBe(0n);
  });

  it('tighter picks the smaller limit, null or undefined meaning no limit', () => {
    expect(tighter(null, null)).toBeNull();
    expect(tighter(undefined, undefined)).toBeNull();
    expect(tighter(5n, null)).toBe(5n);
    expect(tighter(null, 5n)).toBe(5n);
    expect(tighter(5n, undefined)).toBe(5n);
    expect(tighter(7n, 5n)).toBe(5n);
    expect(tighter(V1_UNLIMITED, V1_UNLIMITED - 1n)).toBe(V1_UNLIMITED - 1n);
  });
});

describe('splitByWeight', () => {
  it('rounds each share down, then gives leftover units to the largest remainders, lowest index on ties', () => {
    expect(splitByWeight(10n, [1n, 1n, 1n])).toEqual([4n, 3n, 3n]); // 3.33 each: tie, lowest first
    expect(splitByWeight(100n, [3n, 1n])).toEqual([75n, 25n]); // exact shares stay exact
    expect(splitByWeight(10n, [1n, 2n])).toEqual([3n, 7n]); // 3.33, 6.67: the .67 rounds up
    expect(splitByWeight(2n, [1n, 1n, 1n, 1n])).toEqual([1n, 1n, 0n, 0n]);
  });

  it('splits evenly when every weight is 0, and gives 0s for a total of 0 or less', () => {
    expect(splitByWeight(7n, [0n, 0n])).toEqual([4n, 3n]);
    expect(splitByWeight(0n, [5n, 5n])).toEqual([0n, 0n]);
    expect(splitByWeight(-3n, [5n, 5n])).toEqual([0n, 0n]);
    expect(splitByWeight(5n, [])).toEqual([]);
  });

  it('is exact above 2^53 (no Number on the way)', () => {
    const parts = splitByWeight(U64_MAX, [ABOVE_2_53, ABOVE_2_53, 1n]);
    expect(parts[0]! + parts[1]! + parts[2]!).toBe(U64_MAX);
    expect(parts[0]! - parts[1]!).toBeLessThanOrEqual(1n);
    expect(splitByWeight(3n * ABOVE_2_53, [1n, 1n, 1n])).toEqual([ABOVE_2_53, ABOVE_2_53, ABOVE_2_53]);
  });

  it('conserves the total, and every part is its exact share rounded down or up', () => {
    const weights = fc.array(fc.bigInt({ min: 0n, max: 1n << 64n }), { minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 1n << 70n }), weights, (total, ws) => {
        const parts = splitByWeight(total, ws);
        expect(parts.reduce((a, b) => a + b, 0n)).toBe(total);
        const sum = ws.reduce((a, b) => a + b, 0n);
        const effective = sum === 0n ? ws.map(() => 1n) : ws;
        const effectiveSum = sum === 0n ? BigInt(ws.length) : sum;
        parts.forEach((part, i) => {
          const floor = (total * effective[i]!) / effectiveSum;
          expect(part === floor || part === floor + 1n).toBe(true);
        });
      }),
    );
  });

  it('splitting a smaller amount by the parts of a larger one keeps each part within its own', () => {
    // /proc/swaps: Used is split by the split Size, so Used <= Size on every line.
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 1n << 60n }),
        fc.array(fc.bigInt({ min: 0n, max: 1n << 40n }), { minLength: 1, maxLength: 8 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (total, ws, fill) => {
          const sizes = splitByWeight(total, ws);
          const used = splitByWeight((total * BigInt(Math.floor(fill * 1e6))) / 1_000_000n, sizes);
          for (const [i, u] of used.entries()) expect(u).toBeLessThanOrEqual(sizes[i]!);
        },
      ),
    );
  });
});
