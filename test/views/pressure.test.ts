/**
 * PSI files: the cgroup v2 reader (cgroup/v2/pressure.ts) and the view (views/pressure.ts) on
 * real kernel files (fixtures copied from this machine's unified hierarchy, kernel 6.18; a cpu
 * file as kernels before 5.13 print it, without a full line), and the trigger rules
 * (pressure/trigger.ts) as kernel/sched/psi.c applies them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { parsePressure, readV2Pressure } from '../../src/cgroup/v2/pressure';
import { renderPressure } from '../../src/views/pressure';
import { hasSysResource, parseTrigger, procTriggerPayload, unprivilegedWindowRefused } from '../../src/pressure/trigger';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'cgroup', 'v2');

describe('readV2Pressure and renderPressure', () => {
  for (const resource of ['cpu', 'memory', 'io'] as const) {
    it(`${resource}.pressure (kernel 6.18) renders byte for byte as the kernel printed it`, () => {
      const dir = path.join(FIXTURES, 'pressure');
      const pressure = readV2Pressure(dir, resource);
      expect(pressure).not.toBeNull();
      expect(renderPressure(pressure!)).toBe(fs.readFileSync(path.join(dir, `${resource}.pressure`), 'utf8'));
    });
  }

  it('a cpu file without a full line (before 5.13) stays without; totals past 2^53 stay exact', () => {
    const dir = path.join(FIXTURES, 'pressure-5.10');
    const pressure = readV2Pressure(dir, 'cpu')!;
    expect(pressure.full).toBeNull();
    expect(pressure.some).toEqual({ avg10Centi: 10000, avg60Centi: 305, avg300Centi: 0, totalUs: 18446744073709551615n });
    expect(renderPressure(pressure)).toBe(fs.readFileSync(path.join(dir, 'cpu.pressure'), 'utf8'));
  });

  it('an absent file is null (PSI off); a malformed one is a CgroupParseError naming it', () => {
    expect(readV2Pressure(path.join(FIXTURES, 'pressure-5.10'), 'memory')).toBeNull();
    expect(() => readV2Pressure(path.join(FIXTURES, 'pressure-5.10'), 'io')).toThrow(CgroupParseError);
    expect(() => parsePressure('full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n', 'd', 'f')).toThrow(/no "some" line/);
    expect(() => parsePressure('some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n'.repeat(2), 'd', 'f')).toThrow(/two "some"/);
    expect(() => parsePressure('some avg10=0.0 avg60=0.00 avg300=0.00 total=0\n', 'd', 'f')).toThrow(CgroupParseError);
    expect(() => parsePressure('some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n', 'd', 'f')).toThrow(CgroupParseError);
  });
});

describe('PSI trigger writes', () => {
  it("/proc/pressure's write: at most 32 bytes, the last one cut (psi_write's terminator)", () => {
    expect(procTriggerPayload(Buffer.from('some 150000 1000000\n'))?.toString()).toBe('some 150000 1000000');
    // Without a newline the kernel cuts a digit: 100 ms, not 1 s (what the kernel does, kept).
    expect(procTriggerPayload(Buffer.from('some 150000 1000000'))?.toString()).toBe('some 150000 100000');
    expect(procTriggerPayload(Buffer.from(`some 1 2000000${' '.repeat(40)}`))?.length).toBe(31);
    expect(procTriggerPayload(Buffer.alloc(0))).toBeNull();
  });

  it('parses as sscanf("some %u %u") does: trailing text ignored, other words refused', () => {
    expect(parseTrigger('some 150000 1000000')).toEqual({ full: false, thresholdUs: 150000, windowUs: 1000000 });
    expect(parseTrigger('full 1 2000000\0junk')).toEqual({ full: true, thresholdUs: 1, windowUs: 2000000 });
    expect(parseTrigger('some  1\t2')).toEqual({ full: false, thresholdUs: 1, windowUs: 2 });
    expect(parseTrigger('avg 1 2')).toBeNull();
    expect(parseTrigger('some 1')).toBeNull();
    expect(parseTrigger('some 1 99999999999')).toBeNull();
  });

  it('a writer without CAP_SYS_RESOURCE: only windows of a multiple of 2 s (kernel >= 6.5)', () => {
    expect(unprivilegedWindowRefused('some 150000 1000000', false)).toBe(true);
    expect(unprivilegedWindowRefused('some 150000 2000000', false)).toBe(false);
    expect(unprivilegedWindowRefused('full 150000 4000000', false)).toBe(false);
    expect(unprivilegedWindowRefused('some 150000 1000000', true)).toBe(false);
    // Malformed: left to the kernel, whose errno goes back.
    expect(unprivilegedWindowRefused('bogus', false)).toBe(false);
  });

  it('CAP_SYS_RESOURCE is bit 24 of CapEff', () => {
    expect(hasSysResource('Name:\tx\nCapEff:\t000001ffffffffff\n')).toBe(true);
    expect(hasSysResource('CapEff:\t000001fffeffffff\n')).toBe(false);
    expect(hasSysResource('CapEff:\t0000000001000000\n')).toBe(true);
    expect(hasSysResource('CapEff:\t0000000000000000\n')).toBe(false);
    expect(hasSysResource('Name:\tx\n')).toBe(false);
  });
});
