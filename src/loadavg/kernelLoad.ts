/**
 * The kernel's fixed-point load average arithmetic (include/linux/sched/loadavg.h and
 * kernel/sched/loadavg.c), reproduced exactly so a container's numbers move like the host's.
 *
 * A load is a non-negative integer in 1/FIXED_1 units: 2048 = 1.00. Values stay far below
 * 2^53 (a load of 1,000,000 tasks is ~2^31; the products below ~2^42), so plain numbers are
 * exact; no `>>` anywhere, because JS shifts truncate to 32 bits.
 */

/** Bits of fraction. */
export const FSHIFT = 11;
/** 1.0 as fixed-point. */
export const FIXED_1 = 1 << FSHIFT;
/** Sampling period the EXP_* constants are made for (the kernel's LOAD_FREQ is 5 s + 1 tick). */
export const LOAD_FREQ_MS = 5000;
/** 1/exp(5s/1min), 1/exp(5s/5min), 1/exp(5s/15min) as fixed-point. */
export const EXP_1 = 1884;
export const EXP_5 = 2014;
export const EXP_15 = 2037;

/**
 * One step of the exponential moving average:
 *   load' = (load * exp + active * (FIXED_1 - exp)) / FIXED_1,
 * rounded up while the load is rising (active >= load), as the kernel does, so a constant
 * active count is reached exactly instead of approached forever from below.
 * `load` and `active` are fixed-point (active = number of tasks * FIXED_1).
 */
export function calcLoad(load: number, exp: number, active: number): number {
  let newLoad = load * exp + active * (FIXED_1 - exp);
  if (active >= load) newLoad += FIXED_1 - 1;
  return Math.floor(newLoad / FIXED_1);
}

/**
 * x^n in fixed-point with `fracBits` bits of fraction, rounding each product to nearest:
 * the kernel's fixed_power_int (exponentiation by squaring).
 */
export function fixedPowerInt(x: number, fracBits: number, n: number): number {
  const one = 2 ** fracBits;
  const half = one / 2;
  let result = one;
  let power = x; // x^(2^k) at step k
  let bits = n; // the bits of n not yet applied
  while (bits > 0) {
    if (bits % 2 === 1) result = Math.floor((result * power + half) / one);
    bits = Math.floor(bits / 2);
    if (bits === 0) break;
    power = Math.floor((power * power + half) / one);
  }
  return result;
}

/**
 * `n` steps at once, assuming `active` held for all of them: the kernel's calc_load_n, used
 * when NO_HZ idle skipped sampling windows. calc_load with exp^n.
 */
export function calcLoadN(load: number, exp: number, active: number, n: number): number {
  return calcLoad(load, fixedPowerInt(exp, FSHIFT, n), active);
}

/**
 * Print a fixed-point load the way /proc/loadavg does: get_avenrun(..., FIXED_1/200, 0) adds
 * 0.005 (10/2048) to round to two decimals, then "%lu.%02lu" of LOAD_INT / LOAD_FRAC, where
 * LOAD_FRAC(x) = LOAD_INT((x & (FIXED_1-1)) * 100).
 */
export function formatLoad(fixed: number): string {
  const rounded = fixed + Math.floor(FIXED_1 / 200);
  const whole = Math.floor(rounded / FIXED_1);
  const hundredths = Math.floor(((rounded % FIXED_1) * 100) / FIXED_1);
  return `${whole}.${hundredths < 10 ? '0' : ''}${hundredths}`;
}
