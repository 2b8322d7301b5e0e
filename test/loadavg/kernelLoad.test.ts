import { describe, expect, it } from 'vitest';
import {
  calcLoad,
  calcLoadN,
  EXP_1,
  EXP_15,
  EXP_5,
  FIXED_1,
  fixedPowerInt,
  formatLoad,
  FSHIFT,
} from '../../src/loadavg/kernelLoad';

describe('kernel load constants', () => {
  it('are the kernel values: 11 bits of fraction, 1/exp(5s/1,5,15 min)', () => {
    expect([FSHIFT, FIXED_1, EXP_1, EXP_5, EXP_15]).toEqual([11, 2048, 1884, 2014, 2037]);
    // The EXP_* are 2048 / e^(5/60), 2048 / e^(5/300), 2048 / e^(5/900), rounded.
    expect(Math.round(FIXED_1 / Math.exp(5 / 60))).toBe(EXP_1);
    expect(Math.round(FIXED_1 / Math.exp(5 / 300))).toBe(EXP_5);
    expect(Math.round(FIXED_1 / Math.exp(5 / 900))).toBe(EXP_15);
  });
});

describe('calcLoad', () => {
  it('matches hand-computed kernel steps', () => {
    // (0 * 1884 + 2048 * 164 + 2047) / 2048 = 164.99 -> 164
    expect(calcLoad(0, EXP_1, FIXED_1)).toBe(164);
    // (164 * 1884 + 2048 * 164 + 2047) / 2048 = 646895 / 2048 -> 315
    expect(calcLoad(164, EXP_1, FIXED_1)).toBe(315);
    // Falling: no round-up, 2048 * 1884 / 2048 = 1884
    expect(calcLoad(FIXED_1, EXP_1, 0)).toBe(1884);
    // Steady state holds exactly.
    expect(calcLoad(FIXED_1, EXP_1, FIXED_1)).toBe(FIXED_1);
  });

  it('rounds up while rising, so a constant load is reached exactly, not stuck one below', () => {
    // Without the round-up: (2047 * 1884 + 2048 * 164) / 2048 = 2047.08 -> 2047 for ever.
    expect(calcLoad(2047, EXP_1, FIXED_1)).toBe(FIXED_1);
    let load = 0;
    let steps = 0;
    while (load < FIXED_1 && steps < 1000) {
      load = calcLoad(load, EXP_1, FIXED_1);
      steps++;
    }
    expect(load).toBe(FIXED_1);
    expect(steps).toBeLessThan(200);
  });

  it('decays to exactly 0 once the tasks are gone', () => {
    let load = 5 * FIXED_1;
    for (let i = 0; i < 200; i++) load = calcLoad(load, EXP_1, 0);
    expect(load).toBe(0);
  });

  it('follows the continuous curve 1 - e^(-t/60s) within fixed-point error', () => {
    let load = 0;
    for (let tick = 1; tick <= 36; tick++) {
      load = calcLoad(load, EXP_1, 2 * FIXED_1);
      const ideal = 2 * (1 - (EXP_1 / FIXED_1) ** tick);
      expect(Math.abs(load / FIXED_1 - ideal)).toBeLessThan(0.01);
    }
  });
});

describe('fixedPowerInt and calcLoadN', () => {
  it('computes x^n in fixed point with round-to-nearest steps', () => {
    expect(fixedPowerInt(EXP_1, FSHIFT, 0)).toBe(FIXED_1);
    expect(fixedPowerInt(EXP_1, FSHIFT, 1)).toBe(EXP_1);
    // (1884 * 1884 + 1024) >> 11 = 3550480 / 2048 -> 1733
    expect(fixedPowerInt(EXP_1, FSHIFT, 2)).toBe(1733);
    const e12 = fixedPowerInt(EXP_1, FSHIFT, 12);
    expect(Math.abs(e12 / FIXED_1 - (EXP_1 / FIXED_1) ** 12)).toBeLessThan(2 / FIXED_1);
  });

  it('equals calcLoad for one period and stays close to n repeated steps', () => {
    for (const [load, active] of [
      [0, FIXED_1],
      [5000, 0],
      [3000, 3 * FIXED_1],
      [FIXED_1, FIXED_1],
    ] as const) {
      for (const exp of [EXP_1, EXP_5, EXP_15]) {
        expect(calcLoadN(load, exp, active, 1)).toBe(calcLoad(load, exp, active));
        let stepwise = load;
        for (let i = 0; i < 7; i++) stepwise = calcLoad(stepwise, exp, active);
        expect(Math.abs(calcLoadN(load, exp, active, 7) - stepwise)).toBeLessThanOrEqual(8);
      }
    }
  });
});

describe('formatLoad', () => {
  it('prints like /proc/loadavg: +FIXED_1/200 then integer and truncated hundredths', () => {
    expect(formatLoad(0)).toBe('0.00');
    expect(formatLoad(FIXED_1)).toBe('1.00');
    expect(formatLoad(1024)).toBe('0.50');
    // 2037 + 10 = 2047 -> 0.99; 2038 + 10 = 2048 -> 1.00
    expect(formatLoad(2037)).toBe('0.99');
    expect(formatLoad(2038)).toBe('1.00');
    // 10 + 10 = 20 -> 20 * 100 / 2048 = 0.97 -> 0.00; 11 + 10 = 21 -> 1.02 -> 0.01
    expect(formatLoad(10)).toBe('0.00');
    expect(formatLoad(11)).toBe('0.01');
    expect(formatLoad(250 * FIXED_1 + 205)).toBe('250.10');
  });
});
