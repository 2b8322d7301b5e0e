// Arithmetic on the bigints every cgroup and /proc value is read into (they pass 2^53).

export function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

export function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** `value`, or 0 when negative: kernel counters are unsigned, and no shown amount is negative. */
export function atLeastZero(value: bigint): bigint {
  return value > 0n ? value : 0n;
}

/** The smaller of two optional limits; null or undefined = no limit. */
export function tighter(a: bigint, b: bigint | null | undefined): bigint;
export function tighter(a: bigint | null | undefined, b: bigint | null | undefined): bigint | null;
export function tighter(a: bigint | null | undefined, b: bigint | null | undefined): bigint | null {
  if (a === null || a === undefined) return b ?? null;
  if (b === null || b === undefined) return a;
  return a < b ? a : b;
}

/**
 * `total` split into whole parts in proportion to `weights` (>= 0; all 0 = evenly) that sum to
 * exactly `total`. Rounding (largest remainder): every part is its exact share rounded down,
 * then the units left over go one each to the parts with the largest remainders, lowest index
 * first on ties; so each part is its exact share rounded down or up. `total` <= 0 gives 0s.
 */
export function splitByWeight(total: bigint, weights: readonly bigint[]): bigint[] {
  if (total <= 0n || weights.length === 0) return weights.map(() => 0n);
  let sum = 0n;
  for (const w of weights) sum += w;
  const w = sum > 0n ? weights : weights.map(() => 1n);
  if (sum <= 0n) sum = BigInt(weights.length);
  const parts = w.map((wi) => (total * wi) / sum);
  let left = total;
  for (const part of parts) left -= part;
  const byRemainder = w
    .map((wi, index) => ({ index, remainder: (total * wi) % sum }))
    .sort((a, b) => (a.remainder === b.remainder ? a.index - b.index : a.remainder > b.remainder ? -1 : 1));
  for (const { index } of byRemainder) {
    if (left <= 0n) break;
    parts[index] += 1n;
    left--;
  }
  return parts;
}
