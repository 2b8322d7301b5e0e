import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLoadavg } from '../../src/host/loadavg';
import { FIXED_1 } from '../../src/loadavg/kernelLoad';
import { renderLoadavg } from '../../src/views/loadavg';

/** This machine's /proc/loadavg: "0.07 0.03 0.02 1/97 9298". */
const host = parseLoadavg(readFileSync(path.join(__dirname, '../fixtures/proc/loadavg'), 'utf8'));

describe('renderLoadavg', () => {
  it('prints the container averages, its R/all threads and the host last pid', () => {
    const text = renderLoadavg(
      { load1: 2 * FIXED_1, load5: FIXED_1 + FIXED_1 / 2, load15: 1065, running: 2, total: 345 },
      host,
    );
    // 1065/2048 = 0.52 (+0.005 rounding: 1075/2048 -> 0.52)
    expect(text).toBe('2.00 1.50 0.52 2/345 9298\n');
  });

  it('counts the reader itself as running, as the kernel would', () => {
    const text = renderLoadavg({ load1: 0, load5: 0, load15: 0, running: 0, total: 12 }, host);
    expect(text).toBe('0.00 0.00 0.00 1/12 9298\n');
    const empty = renderLoadavg({ load1: 0, load5: 0, load15: 0, running: 0, total: 0 }, host);
    expect(empty).toBe('0.00 0.00 0.00 1/1 9298\n');
  });

  it('serves the host line when there is no sample', () => {
    expect(renderLoadavg(null, host)).toBe('0.07 0.03 0.02 1/97 9298\n');
  });

  it('prints a line the /proc/loadavg parser reads back', () => {
    const text = renderLoadavg({ load1: 123456, load5: 7, load15: 0, running: 3, total: 40 }, host);
    expect(parseLoadavg(text)).toEqual({
      load1: '60.28',
      load5: '0.00',
      load15: '0.00',
      running: 3,
      total: 40,
      lastPid: 9298,
    });
  });
});
