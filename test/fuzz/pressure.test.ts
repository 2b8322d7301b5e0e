/** Fuzz: the PSI file parser (cgroup/v2/pressure.ts) and the trigger rules (pressure/trigger.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parsePressure } from '../../src/cgroup/v2/pressure';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { renderPressure } from '../../src/views/pressure';
import { parseTrigger, procTriggerPayload, unprivilegedWindowRefused } from '../../src/pressure/trigger';
import { anyText, hostileNumber, parsesOrRejects } from './arbitraries';

const D = '/sys/fs/cgroup/unified/x';
const avg = fc.tuple(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 99 })).map(([w, c]) => `${w}.${String(c).padStart(2, '0')}`);
const psiLine = (kind: string) => fc.tuple(avg, avg, avg, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }))
  .map(([a, b, c, total]) => `${kind} avg10=${a} avg60=${b} avg300=${c} total=${total}\n`);

describe('fuzz: PSI files', () => {
  it("the kernel's own lines render back byte for byte", () => {
    fc.assert(fc.property(psiLine('some'), fc.option(psiLine('full')), (some, full) => {
      const text = some + (full ?? '');
      expect(renderPressure(parsePressure(text, D, 'memory.pressure'))).toBe(text);
    }), { numRuns: 300 });
  });

  it('anything else: a snapshot or CgroupParseError, in bounded time', () => {
    const hostile = fc.tuple(fc.constantFrom('some', 'full', 'avg'), hostileNumber, hostileNumber)
      .map(([kind, a, total]) => `${kind} avg10=${a} avg60=0.00 avg300=0.00 total=${total}\n`);
    fc.assert(fc.property(fc.oneof(anyText, hostile), (text) => {
      const parsed = parsesOrRejects(() => parsePressure(text, D, 'memory.pressure'), CgroupParseError);
      if (parsed !== null) expect(parsed.some.totalUs >= 0n).toBe(true);
    }), { numRuns: 300 });
  });
});

describe('fuzz: PSI trigger writes', () => {
  it('the payload is at most 31 bytes of the write; parsed or left to the kernel, never thrown', () => {
    fc.assert(fc.property(fc.oneof(anyText, fc.tuple(fc.constantFrom('some ', 'full '), hostileNumber, hostileNumber).map(([k, a, b]) => `${k}${a} ${b}`)), (text) => {
      const payload = procTriggerPayload(Buffer.from(text, 'latin1'));
      if (text.length === 0) expect(payload).toBeNull();
      else expect(payload?.length).toBe(Math.min(Buffer.byteLength(text, 'latin1'), 32) - 1);
      const spec = parseTrigger(payload?.toString('latin1') ?? '');
      if (spec !== null) expect(spec.windowUs <= 0xffffffff && spec.thresholdUs <= 0xffffffff).toBe(true);
      expect(typeof unprivilegedWindowRefused(payload?.toString('latin1') ?? '', false)).toBe('boolean');
    }), { numRuns: 300 });
  });
});
